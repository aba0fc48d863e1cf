/*
** elementwise.c: unary and binary elementwise ops with NumPy broadcasting, clip and where,
** their backward rules, and the in-place helpers that backward passes share.
** Arithmetic runs in float32 or, for integer operands, in int64; see 'promote'.
*/
#include <math.h>
#include <string.h>

#include "iter.h"
#include "tape.h"

#define PAR_MIN 32768   // elements below which OpenMP is not worth its start-up

/* {==================================================================
** dtype rules
** =================================================================== */

static int is_compare (trl_op op) { return op >= TRL_OP_EQ && op <= TRL_OP_GE; }

static trl_dtype promote (trl_dtype a, trl_dtype b) {
  if (a == TRL_F32 || b == TRL_F32) return TRL_F32;
  if (a == TRL_I64 || b == TRL_I64) return TRL_I64;
  return TRL_U8;
}

/* }================================================================== */

/* {==================================================================
** Binary kernels on inner rows (byte strides)
** =================================================================== */

static inline float fbin (trl_op op, float x, float y) {
  switch (op) {
    case TRL_OP_ADD: return x + y;
    case TRL_OP_SUB: return x - y;
    case TRL_OP_MUL: return x * y;
    case TRL_OP_DIV: return x / y;
    case TRL_OP_POW: return powf(x, y);
    case TRL_OP_IDIV: return floorf(x / y);
    case TRL_OP_MOD: { float r = fmodf(x, y); return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r; }
    case TRL_OP_MAXIMUM: return x >= y || isnan(x) ? x : y;
    case TRL_OP_MINIMUM: return x <= y || isnan(x) ? x : y;
    case TRL_OP_EQ: return x == y;
    case TRL_OP_NE: return x != y;
    case TRL_OP_LT: return x < y;
    case TRL_OP_LE: return x <= y;
    case TRL_OP_GT: return x > y;
    case TRL_OP_GE: return x >= y;
    default: return 0;
  }
}

static inline int64_t ibin (trl_op op, int64_t x, int64_t y) {
  switch (op) {
    case TRL_OP_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
    case TRL_OP_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
    case TRL_OP_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
    case TRL_OP_POW: {
      if (y < 0) return x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0);
      uint64_t r = 1, b = (uint64_t)x;
      for (; y; y >>= 1, b *= b) if (y & 1) r *= b;
      return (int64_t)r;
    }
    case TRL_OP_IDIV: {
      if (y == 0) return 0;
      int64_t q = x / y;
      return (x % y != 0 && ((x < 0) != (y < 0))) ? q - 1 : q;
    }
    case TRL_OP_MOD: {
      if (y == 0) return 0;
      int64_t r = x % y;
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
    case TRL_OP_MAXIMUM: return x >= y ? x : y;
    case TRL_OP_MINIMUM: return x <= y ? x : y;
    case TRL_OP_EQ: return x == y;
    case TRL_OP_NE: return x != y;
    case TRL_OP_LT: return x < y;
    case TRL_OP_LE: return x <= y;
    case TRL_OP_GT: return x > y;
    case TRL_OP_GE: return x >= y;
    default: return 0;
  }
}

typedef struct { trl_op op; } binud;

// GCC's -O2 cost model leaves loops over possibly aliased pointers scalar; our outputs never
// overlap their inputs except exactly (in place), so the hot loops say so.
#define SIMD _Pragma("omp simd")

// out f32 = a f32 (op) b f32
static void row_f32 (char **p, const int64_t *st, int64_t n, void *ud) {
  trl_op op = ((binud *)ud)->op;
  float *o = (float *)p[0];
  const char *a = p[1], *b = p[2];
  if (st[1] == 4 && st[2] == 4) {
    const float *x = (const float *)a, *y = (const float *)b;
    switch (op) {  // the hot cases, written out so they vectorize
      case TRL_OP_ADD: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i]; return;
      case TRL_OP_SUB: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i]; return;
      case TRL_OP_MUL: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; return;
      case TRL_OP_DIV: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] / y[i]; return;
      default: break;
    }
  } else if (st[1] == 4 && st[2] == 0) {
    const float *x = (const float *)a, y = *(const float *)b;
    switch (op) {
      case TRL_OP_ADD: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] + y; return;
      case TRL_OP_SUB: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] - y; return;
      case TRL_OP_MUL: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] * y; return;
      case TRL_OP_DIV: SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] / y; return;
      default: break;
    }
  }
  for (int64_t i = 0; i < n; i++)
    o[i] = fbin(op, *(const float *)(a + i * st[1]), *(const float *)(b + i * st[2]));
}

static void row_f32_cmp (char **p, const int64_t *st, int64_t n, void *ud) {
  trl_op op = ((binud *)ud)->op;
  uint8_t *o = (uint8_t *)p[0];
  for (int64_t i = 0; i < n; i++)
    o[i] = (uint8_t)fbin(op, *(const float *)(p[1] + i * st[1]), *(const float *)(p[2] + i * st[2]));
}

static void row_i64 (char **p, const int64_t *st, int64_t n, void *ud) {
  trl_op op = ((binud *)ud)->op;
  int64_t *o = (int64_t *)p[0];
  for (int64_t i = 0; i < n; i++)
    o[i] = ibin(op, *(const int64_t *)(p[1] + i * st[1]), *(const int64_t *)(p[2] + i * st[2]));
}

static void row_i64_cmp (char **p, const int64_t *st, int64_t n, void *ud) {
  trl_op op = ((binud *)ud)->op;
  uint8_t *o = (uint8_t *)p[0];
  for (int64_t i = 0; i < n; i++)
    o[i] = (uint8_t)ibin(op, *(const int64_t *)(p[1] + i * st[1]), *(const int64_t *)(p[2] + i * st[2]));
}

/* }================================================================== */

// 't' itself (new ref) if already of dtype 'dt', else a converted copy.
static trl_status as_dtype (trl_tensor **out, trl_tensor *t, trl_dtype dt) {
  if (t->dtype == dt) {
    trl_tensor_retain(t);
    *out = t;
    return TRL_OK;
  }
  return trl_tensor_clone(out, t, dt);
}

// The forward kernel of a binary op into an existing 'out' (no recording).
static trl_status binary_into (trl_tensor *out, trl_op op, trl_tensor *a, trl_tensor *b) {
  trl_dtype ct = promote(a->dtype, b->dtype);
  if (op == TRL_OP_DIV || op == TRL_OP_POW) {
    if (ct != TRL_F32 && op == TRL_OP_DIV) ct = TRL_F32;
  }
  if (ct == TRL_U8) ct = TRL_I64;
  trl_tensor *ca = NULL, *cb = NULL, *tmp = NULL;
  trl_status st = as_dtype(&ca, a, ct);
  if (st == TRL_OK) st = as_dtype(&cb, b, ct);
  trl_dtype want = is_compare(op) ? TRL_U8 : ct;
  trl_tensor *dst = out;
  if (st == TRL_OK && out->dtype != want) {  // compute in 'want', then convert
    st = trl_tensor_empty(&tmp, want, out->ndim, out->shape);
    dst = tmp;
  }
  if (st == TRL_OK) {
    iter_t it;
    trl_tensor *ops[3] = {dst, ca, cb};
    st = iter_init(&it, trl_op_name(op), 3, ops);
    if (st == TRL_OK) {
      binud ud = {op};
      iter_fn fn = ct == TRL_F32 ? (is_compare(op) ? row_f32_cmp : row_f32)
                                 : (is_compare(op) ? row_i64_cmp : row_i64);
      int64_t n = trl_numel(dst);
      if (n >= PAR_MIN && it.ndim == 1 && fn == row_f32) {  // one long row: split it
        #pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < (n + PAR_MIN - 1) / PAR_MIN; c++) {
          int64_t lo = c * PAR_MIN, len = n - lo < PAR_MIN ? n - lo : PAR_MIN;
          char *p[3];
          for (int k = 0; k < 3; k++) p[k] = it.base[k] + lo * it.stride[k][0];
          int64_t s[3] = {it.stride[0][0], it.stride[1][0], it.stride[2][0]};
          row_f32(p, s, len, &ud);
        }
      } else {
        iter_run(&it, fn, &ud);
      }
    }
  }
  if (st == TRL_OK && tmp) st = trl_copy_into(out, tmp);
  trl_tensor_release(tmp);
  trl_tensor_release(ca);
  trl_tensor_release(cb);
  return st;
}

/* {==================================================================
** In-place helpers for backward passes (no recording)
** =================================================================== */

// dst (f32, any view) += src broadcast to dst's shape.
static trl_status add_into (trl_tensor *dst, trl_tensor *src) {
  int64_t n = trl_numel(dst);
  if (n >= 2 * PAR_MIN && trl_same_shape(dst, src) && trl_is_contiguous(dst) &&
      trl_is_contiguous(src) && src->dtype == TRL_F32) {  // the common case: split it
    float *d = trl_f32(dst);
    const float *s = trl_f32(src);
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < (n + PAR_MIN - 1) / PAR_MIN; c++) {
      int64_t lo = c * PAR_MIN, hi = lo + PAR_MIN < n ? lo + PAR_MIN : n;
      SIMD for (int64_t i = lo; i < hi; i++) d[i] += s[i];
    }
    return TRL_OK;
  }
  iter_t it;
  trl_tensor *ops[3] = {dst, dst, src};
  TRL_TRY(iter_init(&it, "add_", 3, ops));
  binud ud = {TRL_OP_ADD};
  iter_run(&it, row_f32, &ud);
  return TRL_OK;
}

static void row_acc (char **p, const int64_t *st, int64_t n, void *ud) {
  float *d = (float *)p[0];
  const char *s = p[1];
  if (st[0] == 0) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += *(const float *)(s + i * st[1]);
    *d += (float)acc;
  } else {
    for (int64_t i = 0; i < n; i++) *(float *)((char *)d + i * st[0]) += *(const float *)(s + i * st[1]);
  }
}

trl_status trl_sum_to_acc (trl_tensor *dst, const trl_tensor *g) {
  if (trl_same_shape(dst, g)) return add_into(dst, (trl_tensor *)g);
  // walk g's shape; dst is broadcast to it (stride 0 on summed dims), accumulating
  trl_tensor *gg = (trl_tensor *)g;
  iter_t it;
  trl_tensor dv = *dst;  // dst's header broadcast to g's shape
  int nd = g->ndim, lead = nd - dst->ndim;
  if (lead < 0) goto bad;
  for (int i = nd - 1; i >= 0; i--) {
    int j = i - lead;
    if (j >= 0 && dst->shape[j] == g->shape[i]) dv.stride[i] = dst->stride[j];
    else if (j < 0 || dst->shape[j] == 1) dv.stride[i] = 0;
    else goto bad;
    dv.shape[i] = g->shape[i];
  }
  dv.ndim = nd;
  trl_tensor *ops[2] = {&dv, gg};  // 'dv' is a header copy: iter_init reads only its layout
  TRL_TRY(iter_init(&it, "sum_to", 2, ops));
  iter_run(&it, row_acc, NULL);
  return TRL_OK;
bad: {
    char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
    return trl_fail(TRL_ESHAPE, "sum_to: cannot reduce %s to %s", trl_tensor_shape_str(b1, g),
                    trl_tensor_shape_str(b2, dst));
  }
}

// gin += x (op) y, with x (op) y of the output's shape, summed down to gin's shape.
static trl_status acc_binary (trl_tensor *gin, trl_op op, trl_tensor *x, trl_tensor *y) {
  trl_tensor *t;
  TRL_TRY(trl_binary(&t, op, x, y));
  trl_status st = trl_sum_to_acc(gin, t);
  trl_tensor_release(t);
  return st;
}

/* }================================================================== */

/* {==================================================================
** Binary ops
** =================================================================== */

// dst (f32, contiguous) = src (f32, same shape, any view), in parallel for large ones.
static trl_status copy_f32 (trl_tensor *dst, const trl_tensor *src) {
  int64_t n = trl_numel(dst);
  if (!trl_is_contiguous(src) || src->dtype != TRL_F32) return trl_copy_into(dst, src);
  float *d = trl_f32(dst);
  const float *s = trl_f32(src);
  #pragma omp parallel for schedule(static) if (n >= 2 * PAR_MIN)
  for (int64_t c = 0; c < (n + PAR_MIN - 1) / PAR_MIN; c++) {
    int64_t lo = c * PAR_MIN, len = n - lo < PAR_MIN ? n - lo : PAR_MIN;
    memcpy(d + lo, s + lo, sizeof(float) * (size_t)len);
  }
  return TRL_OK;
}

static trl_status binary_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  trl_tensor *a = n->in[0], *b = n->in[1], *g = (trl_tensor *)gout;
  trl_status st = TRL_OK;
  switch (n->op) {
    case TRL_OP_ADD:   // a fresh gin (see trl_binary) is written: copied, or zeroed then summed
      for (int i = 0; i < 2; i++) {
        if (!gin[i]) continue;
        if ((n->fresh >> i) & 1u) {
          if (trl_f32(gin[i]) == trl_f32(g)) continue;   // gout's own buffer (reuses)
          if (trl_same_shape(gin[i], g)) { TRL_TRY(copy_f32(gin[i], g)); continue; }
          memset(trl_f32(gin[i]), 0, sizeof(float) * (size_t)trl_numel(gin[i]));
        }
        TRL_TRY(trl_sum_to_acc(gin[i], g));
      }
      break;
    case TRL_OP_SUB:
      if (gin[0]) TRL_TRY(trl_sum_to_acc(gin[0], g));
      if (gin[1]) {
        trl_tensor *ng;
        TRL_TRY(trl_unary(&ng, TRL_OP_NEG, g));
        st = trl_sum_to_acc(gin[1], ng);
        trl_tensor_release(ng);
      }
      break;
    case TRL_OP_MUL:
      if (gin[0]) TRL_TRY(acc_binary(gin[0], TRL_OP_MUL, g, b));
      if (gin[1]) TRL_TRY(acc_binary(gin[1], TRL_OP_MUL, g, a));
      break;
    case TRL_OP_DIV:
      if (gin[0]) TRL_TRY(acc_binary(gin[0], TRL_OP_DIV, g, b));
      if (gin[1]) {  // -g * out / b
        trl_tensor *t1, *t2;
        TRL_TRY(trl_binary(&t1, TRL_OP_MUL, g, n->saved[0]));
        st = trl_binary(&t2, TRL_OP_DIV, t1, b);
        trl_tensor_release(t1);
        if (st != TRL_OK) return st;
        trl_tensor *t3;
        st = trl_unary(&t3, TRL_OP_NEG, t2);
        trl_tensor_release(t2);
        if (st != TRL_OK) return st;
        st = trl_sum_to_acc(gin[1], t3);
        trl_tensor_release(t3);
      }
      break;
    case TRL_OP_POW:
      if (gin[0]) {  // g * b * a^(b-1)
        trl_tensor *one, *bm1 = NULL, *p = NULL, *t = NULL;
        int64_t s1 = 1;
        TRL_TRY(trl_tensor_empty(&one, TRL_F32, 0, &s1));
        trl_fill(one, 1);
        st = trl_binary(&bm1, TRL_OP_SUB, b, one);
        if (st == TRL_OK) st = trl_binary(&p, TRL_OP_POW, a, bm1);
        if (st == TRL_OK) st = trl_binary(&t, TRL_OP_MUL, p, b);
        if (st == TRL_OK) st = acc_binary(gin[0], TRL_OP_MUL, g, t);
        trl_tensor_release(one); trl_tensor_release(bm1);
        trl_tensor_release(p); trl_tensor_release(t);
        if (st != TRL_OK) return st;
      }
      if (gin[1]) {  // g * out * log(a)
        trl_tensor *la = NULL, *t = NULL;
        st = trl_unary(&la, TRL_OP_LOG, a);
        if (st == TRL_OK) st = trl_binary(&t, TRL_OP_MUL, n->saved[0], la);
        if (st == TRL_OK) st = acc_binary(gin[1], TRL_OP_MUL, g, t);
        trl_tensor_release(la); trl_tensor_release(t);
      }
      break;
    case TRL_OP_MAXIMUM: case TRL_OP_MINIMUM: {  // route to the chosen operand (ties: a)
      trl_tensor *mask = NULL, *mf = NULL;
      st = trl_binary(&mask, n->op == TRL_OP_MAXIMUM ? TRL_OP_GE : TRL_OP_LE, a, b);
      if (st == TRL_OK) st = trl_tensor_clone(&mf, mask, TRL_F32);
      if (st == TRL_OK && gin[0]) st = acc_binary(gin[0], TRL_OP_MUL, g, mf);
      if (st == TRL_OK && gin[1]) {
        trl_tensor *inv = NULL, *one = NULL;
        int64_t s1 = 1;
        st = trl_tensor_empty(&one, TRL_F32, 0, &s1);
        if (st == TRL_OK) { trl_fill(one, 1); st = trl_binary(&inv, TRL_OP_SUB, one, mf); }
        if (st == TRL_OK) st = acc_binary(gin[1], TRL_OP_MUL, g, inv);
        trl_tensor_release(inv); trl_tensor_release(one);
      }
      trl_tensor_release(mask); trl_tensor_release(mf);
      break;
    }
    default:
      break;
  }
  return st;
}

trl_status trl_binary (trl_tensor **out, trl_op op, trl_tensor *a, trl_tensor *b) {
  int64_t shape[TRL_MAXDIM];
  int nd;
  const char *name = trl_op_name(op);
  if (op < TRL_OP_ADD || op > TRL_OP_GE)
    return trl_fail(TRL_EARG, "binary: %s is not a binary op", name);
  TRL_TRY(trl_broadcast_shape(name, a, b, shape, &nd));
  trl_dtype ct = promote(a->dtype, b->dtype);
  trl_dtype odt = is_compare(op) ? TRL_U8 : (op == TRL_OP_DIV ? TRL_F32 : ct);
  TRL_TRY(trl_tensor_empty(out, odt, nd, shape));
  trl_status st = binary_into(*out, op, a, b);
  trl_tensor *in[2] = {a, b};
  int diff = !is_compare(op) && op != TRL_OP_IDIV && op != TRL_OP_MOD && odt == TRL_F32;
  if (st == TRL_OK && diff && trl_tape_wants(2, in)) {
    trl_node *node;
    st = trl_tape_record(&node, *out, op, binary_backward, 2, in, 0);
    if (st == TRL_OK && (op == TRL_OP_DIV || op == TRL_OP_POW)) trl_node_save(node, 0, *out);
    // add/sub need only shapes; div needs b and the output
    if (st == TRL_OK && op == TRL_OP_ADD) node->overwrites = node->reuses = node->passes = 3u;
    unsigned drop = op == TRL_OP_ADD || op == TRL_OP_SUB ? 3u : op == TRL_OP_DIV ? 1u : 0u;
    if (st == TRL_OK && drop) st = trl_node_drop_values(node, drop);
  }
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

/* }================================================================== */

/* {==================================================================
** Unary ops
** =================================================================== */

static inline float sigmoidf (float x) {
  return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

static void unary_f32 (trl_op op, const float *x, float *o, int64_t n) {
  switch (op) {
    case TRL_OP_NEG: for (int64_t i = 0; i < n; i++) o[i] = -x[i]; break;
    case TRL_OP_ABS: for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]); break;
    case TRL_OP_EXP: for (int64_t i = 0; i < n; i++) o[i] = expf(x[i]); break;
    case TRL_OP_LOG: for (int64_t i = 0; i < n; i++) o[i] = logf(x[i]); break;
    case TRL_OP_SQRT: for (int64_t i = 0; i < n; i++) o[i] = sqrtf(x[i]); break;
    case TRL_OP_SQUARE: for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i]; break;
    case TRL_OP_RELU:
      SIMD for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0 ? x[i] : 0;
      break;
    case TRL_OP_SIGMOID: for (int64_t i = 0; i < n; i++) o[i] = sigmoidf(x[i]); break;
    case TRL_OP_TANH: for (int64_t i = 0; i < n; i++) o[i] = tanhf(x[i]); break;
    default: break;
  }
}

// d += dL/dx for 'n' elements, given g = dL/dy, the input a and the output o.
static void unary_backward_f32 (trl_op op, const float *g, const float *a, const float *o,
                                float *d, int64_t n) {
  switch (op) {
    case TRL_OP_NEG: for (int64_t i = 0; i < n; i++) d[i] -= g[i]; break;
    case TRL_OP_ABS:
      for (int64_t i = 0; i < n; i++) d[i] += a[i] > 0 ? g[i] : (a[i] < 0 ? -g[i] : 0);
      break;
    case TRL_OP_EXP: for (int64_t i = 0; i < n; i++) d[i] += g[i] * o[i]; break;
    case TRL_OP_LOG: for (int64_t i = 0; i < n; i++) d[i] += g[i] / a[i]; break;
    case TRL_OP_SQRT: for (int64_t i = 0; i < n; i++) d[i] += g[i] / (2 * o[i]); break;
    case TRL_OP_SQUARE: for (int64_t i = 0; i < n; i++) d[i] += 2 * a[i] * g[i]; break;
    case TRL_OP_RELU:
      SIMD for (int64_t i = 0; i < n; i++) d[i] += o[i] > 0 ? g[i] : 0;
      break;
    case TRL_OP_SIGMOID: for (int64_t i = 0; i < n; i++) d[i] += g[i] * o[i] * (1 - o[i]); break;
    case TRL_OP_TANH: for (int64_t i = 0; i < n; i++) d[i] += g[i] * (1 - o[i] * o[i]); break;
    default: break;
  }
}

// Ops whose backward reads the input (the others read only the output).
static int needs_input (trl_op op) {
  return op == TRL_OP_ABS || op == TRL_OP_LOG || op == TRL_OP_SQUARE;
}

static trl_status unary_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  trl_tensor *y = n->saved[0];
  int64_t cnt = trl_numel(gout);
  trl_tensor *cx = NULL;
  if (needs_input(n->op)) TRL_TRY(trl_tensor_contiguous(&cx, n->in[0]));
  const float *g = trl_f32(gout), *a = cx ? trl_f32(cx) : NULL, *o = trl_f32(y);
  float *d = trl_f32(gin[0]);  // gin is contiguous and shaped like x
  int write = n->fresh & 1u;   // relu only (see trl_unary): d = ..., not d += ...
  #pragma omp parallel for schedule(static) if (cnt >= 2 * PAR_MIN)
  for (int64_t c = 0; c < (cnt + PAR_MIN - 1) / PAR_MIN; c++) {
    int64_t lo = c * PAR_MIN, len = cnt - lo < PAR_MIN ? cnt - lo : PAR_MIN;
    if (write) {
      const float *gc = g + lo, *oc = o + lo;
      float *dc = d + lo;
      SIMD for (int64_t i = 0; i < len; i++) dc[i] = oc[i] > 0 ? gc[i] : 0;
    } else {
      unary_backward_f32(n->op, g + lo, a + lo, o + lo, d + lo, len);
    }
  }
  trl_tensor_release(cx);
  return TRL_OK;
}

trl_status trl_unary (trl_tensor **out, trl_op op, trl_tensor *a) {
  if (op < TRL_OP_NEG || op > TRL_OP_TANH)
    return trl_fail(TRL_EARG, "unary: %s is not a unary op", trl_op_name(op));
  int int_ok = op == TRL_OP_NEG || op == TRL_OP_ABS || op == TRL_OP_SQUARE || op == TRL_OP_RELU;
  if (a->dtype != TRL_F32 && int_ok) {  // stays integer: x op 0 through the binary kernels
    int64_t s1 = 1;
    trl_tensor *z;
    TRL_TRY(trl_tensor_zeros(&z, TRL_I64, 0, &s1));
    trl_status st;
    if (op == TRL_OP_NEG) st = trl_binary(out, TRL_OP_SUB, z, a);
    else if (op == TRL_OP_RELU) st = trl_binary(out, TRL_OP_MAXIMUM, a, z);
    else if (op == TRL_OP_SQUARE) st = trl_binary(out, TRL_OP_MUL, a, a);
    else {
      trl_tensor *neg;
      st = trl_binary(&neg, TRL_OP_SUB, z, a);
      if (st == TRL_OK) { st = trl_binary(out, TRL_OP_MAXIMUM, a, neg); trl_tensor_release(neg); }
    }
    trl_tensor_release(z);
    return st;
  }
  trl_tensor *x;
  TRL_TRY(a->dtype == TRL_F32 ? trl_tensor_contiguous(&x, a) : trl_tensor_clone(&x, a, TRL_F32));
  trl_status st = trl_tensor_empty(out, TRL_F32, a->ndim, a->shape);
  if (st == TRL_OK) {
    int64_t n = trl_numel(x);
    const float *px = trl_f32(x);
    float *po = trl_f32(*out);
    if (n >= PAR_MIN) {
      #pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < (n + PAR_MIN - 1) / PAR_MIN; c++) {
        int64_t lo = c * PAR_MIN, len = n - lo < PAR_MIN ? n - lo : PAR_MIN;
        unary_f32(op, px + lo, po + lo, len);
      }
    } else {
      unary_f32(op, px, po, n);
    }
    trl_tensor *in[1] = {a};
    if (a->dtype == TRL_F32 && trl_tape_wants(1, in)) {
      trl_node *node;
      st = trl_tape_record(&node, *out, op, unary_backward, 1, in, 0);
      if (st == TRL_OK) trl_node_save(node, 0, *out);
      if (st == TRL_OK && op == TRL_OP_RELU) node->overwrites = node->reuses = 1u;
      if (st == TRL_OK && !needs_input(op)) st = trl_node_drop_values(node, 1);
    }
  }
  trl_tensor_release(x);
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

/* }================================================================== */

/* {==================================================================
** clip and where
** =================================================================== */

typedef struct { float lo, hi; } clip_payload;

static trl_status clip_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  const clip_payload *p = (const clip_payload *)n->payload;
  trl_tensor *cx;
  TRL_TRY(trl_tensor_contiguous(&cx, n->in[0]));
  const float *a = trl_f32(cx), *g = trl_f32(gout);
  float *d = trl_f32(gin[0]), l = p->lo, h = p->hi;
  int write = n->fresh & 1u;   // the first gradient of x: written, not accumulated
  int64_t cnt = trl_numel(gout);
  #pragma omp parallel for schedule(static) if (cnt >= 2 * PAR_MIN)
  for (int64_t c = 0; c < (cnt + PAR_MIN - 1) / PAR_MIN; c++) {
    int64_t lo = c * PAR_MIN, hi = lo + PAR_MIN < cnt ? lo + PAR_MIN : cnt;
    if (write) SIMD for (int64_t i = lo; i < hi; i++) d[i] = (a[i] >= l && a[i] <= h) ? g[i] : 0;
    else SIMD for (int64_t i = lo; i < hi; i++) d[i] += (a[i] >= l && a[i] <= h) ? g[i] : 0;
  }
  trl_tensor_release(cx);
  return TRL_OK;
}

trl_status trl_clip (trl_tensor **out, trl_tensor *a, double lo, double hi) {
  if (a->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "clip: expected float32, got %s", trl_dtype_name(a->dtype));
  if (lo > hi) return trl_fail(TRL_EARG, "clip: lower bound %g above upper bound %g", lo, hi);
  trl_tensor *x;
  TRL_TRY(trl_tensor_contiguous(&x, a));
  trl_status st = trl_tensor_empty(out, TRL_F32, a->ndim, a->shape);
  if (st != TRL_OK) { trl_tensor_release(x); return st; }
  const float *px = trl_f32(x);
  float *o = trl_f32(*out), l = (float)lo, h = (float)hi;
  int64_t n = trl_numel(a);
  #pragma omp parallel for schedule(static) if (n >= 2 * PAR_MIN)
  for (int64_t c = 0; c < (n + PAR_MIN - 1) / PAR_MIN; c++) {
    int64_t i0 = c * PAR_MIN, i1 = i0 + PAR_MIN < n ? i0 + PAR_MIN : n;
    SIMD for (int64_t i = i0; i < i1; i++) o[i] = px[i] < l ? l : (px[i] > h ? h : px[i]);
  }
  trl_tensor_release(x);
  trl_node *node;
  trl_tensor *in[1] = {a};
  st = trl_tape_record(&node, *out, TRL_OP_CLIP, clip_backward, 1, in, sizeof(clip_payload));
  if (st == TRL_OK && node) {
    *(clip_payload *)node->payload = (clip_payload){l, h};
    node->overwrites = node->reuses = 1u;
  }
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

static trl_status where_backward (trl_node *n, const trl_tensor *gout, trl_tensor **gin) {
  trl_tensor *z;
  int64_t s1 = 1;
  TRL_TRY(trl_tensor_zeros(&z, TRL_F32, 0, &s1));
  trl_status st = TRL_OK;
  for (int k = 1; k <= 2 && st == TRL_OK; k++) {
    if (!gin[k]) continue;
    trl_tensor *t;
    st = k == 1 ? trl_where(&t, n->in[0], (trl_tensor *)gout, z)
                : trl_where(&t, n->in[0], z, (trl_tensor *)gout);
    if (st == TRL_OK) { st = trl_sum_to_acc(gin[k], t); trl_tensor_release(t); }
  }
  trl_tensor_release(z);
  return st;
}

static void row_where (char **p, const int64_t *st, int64_t n, void *ud) {
  trl_dtype ct = *(trl_dtype *)ud;
  for (int64_t i = 0; i < n; i++) {
    int c = *(const uint8_t *)(p[1] + i * st[1]) != 0;
    const char *src = c ? p[2] + i * st[2] : p[3] + i * st[3];
    if (ct == TRL_F32) ((float *)p[0])[i] = *(const float *)src;
    else ((int64_t *)p[0])[i] = *(const int64_t *)src;
  }
}

trl_status trl_where (trl_tensor **out, trl_tensor *cond, trl_tensor *a, trl_tensor *b) {
  int64_t s1[TRL_MAXDIM], s2[TRL_MAXDIM];
  int n1, n2;
  TRL_TRY(trl_broadcast_shape("where", a, b, s1, &n1));
  trl_tensor tmp = {0};
  tmp.ndim = n1;
  memcpy(tmp.shape, s1, sizeof s1);
  TRL_TRY(trl_broadcast_shape("where", cond, &tmp, s2, &n2));
  trl_dtype ct = promote(a->dtype, b->dtype);
  if (ct == TRL_U8) ct = TRL_I64;
  trl_tensor *cc = NULL, *ca = NULL, *cb = NULL;
  trl_status st = as_dtype(&cc, cond, TRL_U8);
  if (st == TRL_OK) st = as_dtype(&ca, a, ct);
  if (st == TRL_OK) st = as_dtype(&cb, b, ct);
  if (st == TRL_OK) st = trl_tensor_empty(out, ct, n2, s2);
  if (st == TRL_OK) {
    iter_t it;
    trl_tensor *ops[4] = {*out, cc, ca, cb};
    st = iter_init(&it, "where", 4, ops);
    if (st == TRL_OK) iter_run(&it, row_where, &ct);
    trl_tensor *in[3] = {cond, a, b};
    if (st == TRL_OK && ct == TRL_F32 && trl_tape_wants(3, in)) {
      trl_node *node;
      st = trl_tape_record(&node, *out, TRL_OP_WHERE, where_backward, 3, in, 0);
      if (st == TRL_OK) st = trl_node_drop_values(node, 6);  // a and b: shapes only
    }
    if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  }
  trl_tensor_release(cc); trl_tensor_release(ca); trl_tensor_release(cb);
  return st;
}

/* }================================================================== */
