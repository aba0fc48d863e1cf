/*
** l_tensor.c: the 'trl._tensor' module: tensor constructors, methods, metamethods,
** indexing, printing, autograd entry points and runtime settings. Lua positions (dims,
** indices, ranges) are 1-based and inclusive, negatives count from the end; values stored
** in tensors (labels, argmax results) are 0-based, as in Gluon.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l_util.h"
#include "mem.h"
#include "tape.h"

/* {==================================================================
** Arguments
** =================================================================== */

static trl_dtype optdtype (lua_State *L, int idx, trl_dtype def) {
  if (lua_isnoneornil(L, idx)) return def;
  const char *s = luaL_checkstring(L, idx);
  int dt = trl_dtype_from_name(s);
  if (dt < 0) luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s' (float32, int64, uint8)", s));
  return (trl_dtype)dt;
}

// A 0-d tensor holding the Lua number at 'idx', typed to sit next to 'other' (NumPy's weak scalars).
static trl_tensor *scalar_for (lua_State *L, int idx, const trl_tensor *other) {
  TBox *b = trl_newbox(L);
  int isint = lua_isinteger(L, idx);
  lua_Number v = lua_tonumber(L, idx);
  trl_dtype dt = TRL_F32;
  if (other && other->dtype != TRL_F32 && isint)
    dt = (other->dtype == TRL_U8 && v >= 0 && v <= 255) ? TRL_U8 : TRL_I64;
  trl_check(L, trl_tensor_empty(&b->t, dt, 0, NULL));
  if (dt == TRL_I64) *(int64_t *)trl_data(b->t) = lua_tointeger(L, idx);
  else trl_set(b->t, 0, v);
  lua_replace(L, idx);  // the box takes the number's slot, so it lives as long as the call
  return b->t;
}

// The tensor at 'idx', turning a Lua number into a 0-d tensor typed after 'other'.
static trl_tensor *tensor_or_scalar (lua_State *L, int idx, int other_idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    trl_tensor *o = lua_type(L, other_idx) == LUA_TNUMBER ? NULL : trl_totensor(L, other_idx);
    return scalar_for(L, idx, o);
  }
  return trl_checktensor(L, idx);
}

/* }================================================================== */

/* {==================================================================
** Constructors
** =================================================================== */

// Walk a nested Lua table to find its shape (from the first elements).
static int table_shape (lua_State *L, int idx, int64_t *shape) {
  int nd = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (nd == TRL_MAXDIM) luaL_error(L, "array: more than %d nested levels", TRL_MAXDIM);
    shape[nd++] = (int64_t)luaL_len(L, -1);
    if (shape[nd - 1] == 0) break;
    lua_geti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return nd;
}

// Fill 'dst' from a nested table, checking that every row has the same length.
static void table_fill (lua_State *L, int idx, trl_tensor *t, int d, int64_t *pos, int *isfloat) {
  int64_t n = (int64_t)luaL_len(L, idx);
  if (n != t->shape[d]) {
    char b[TRL_SHAPELEN];
    luaL_error(L, "array: ragged nested table: a row at depth %d has %d items, expected %d (shape %s)",
               d + 1, (int)n, (int)t->shape[d], trl_tensor_shape_str(b, t));
  }
  for (int64_t i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    if (d + 1 < t->ndim) {
      if (!lua_istable(L, -1)) luaL_error(L, "array: ragged nested table at depth %d", d + 2);
      table_fill(L, lua_gettop(L), t, d + 1, pos, isfloat);
    } else {
      int ok;
      lua_Number v = lua_tonumberx(L, -1, &ok);
      if (!ok) {
        if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1);
        else luaL_error(L, "array: expected numbers, got a %s", luaL_typename(L, -1));
      }
      if (!lua_isinteger(L, -1) && !lua_isboolean(L, -1)) *isfloat = 1;
      if (t->dtype == TRL_I64 && lua_isinteger(L, -1)) ((int64_t *)trl_data(t))[*pos] = lua_tointeger(L, -1);
      else trl_set(t, *pos, v);
      (*pos)++;
    }
    lua_pop(L, 1);
  }
}

static int m_array (lua_State *L) {
  trl_tensor *src = trl_totensor(L, 1);
  if (src) {  // nd.array(tensor [, dtype]) copies
    trl_dtype dt = optdtype(L, 2, src->dtype);
    TBox *b = trl_newbox(L);
    trl_check(L, trl_tensor_clone(&b->t, src, dt));
    return 1;
  }
  trl_dtype dt = optdtype(L, 2, TRL_F32);
  int64_t shape[TRL_MAXDIM];
  int nd = 0;
  if (lua_type(L, 1) == LUA_TNUMBER) nd = 0;
  else {
    luaL_checktype(L, 1, LUA_TTABLE);
    nd = table_shape(L, 1, shape);
  }
  TBox *b = trl_newbox(L);
  trl_check(L, trl_tensor_empty(&b->t, dt, nd, shape));
  if (nd == 0) trl_set(b->t, 0, luaL_checknumber(L, 1));
  else if (trl_numel(b->t) > 0) {
    int64_t pos = 0;
    int isfloat = 0;
    table_fill(L, 1, b->t, 0, &pos, &isfloat);
  }
  return 1;
}

static int fill_new (lua_State *L, double v) {
  int64_t shape[TRL_MAXDIM];
  int nd = trl_checkshape(L, 1, shape);
  trl_dtype dt = optdtype(L, lua_istable(L, 1) ? 2 : nd + 1, TRL_F32);
  TBox *b = trl_newbox(L);
  trl_check(L, trl_tensor_empty(&b->t, dt, nd, shape));
  trl_fill(b->t, v);
  return 1;
}

static int m_zeros (lua_State *L) { return fill_new(L, 0); }
static int m_ones (lua_State *L) { return fill_new(L, 1); }

static int m_full (lua_State *L) {
  lua_Number v = luaL_checknumber(L, 2);
  lua_remove(L, 2);
  return fill_new(L, v);
}

static int m_arange (lua_State *L) {
  double start = luaL_checknumber(L, 1), stop, step = luaL_optnumber(L, 3, 1);
  if (lua_isnoneornil(L, 2)) { stop = start; start = 0; }
  else stop = luaL_checknumber(L, 2);
  // Gluon's arange is float32 by default, whatever the arguments
  trl_dtype dt = optdtype(L, 4, TRL_F32);
  TBox *b = trl_newbox(L);
  trl_check(L, trl_arange(&b->t, start, stop, step, dt));
  return 1;
}

static trl_rng *main_rng (void) { return trl_rng_default(); }

static int random_fill (lua_State *L, int normal) {
  double p1 = luaL_optnumber(L, 1, normal ? 0 : 0), p2 = luaL_optnumber(L, 2, 1);
  int64_t shape[TRL_MAXDIM];
  int nd = lua_isnoneornil(L, 3) ? 1 : trl_checkshape(L, 3, shape);
  if (lua_isnoneornil(L, 3)) shape[0] = 1;
  TBox *b = trl_newbox(L);
  trl_check(L, trl_tensor_empty(&b->t, TRL_F32, nd, shape));
  trl_check(L, normal ? trl_random_normal(b->t, main_rng(), p1, p2)
                      : trl_random_uniform(b->t, main_rng(), p1, p2));
  return 1;
}

static int m_uniform (lua_State *L) { return random_fill(L, 0); }
static int m_normal (lua_State *L) { return random_fill(L, 1); }

static int m_seed (lua_State *L) {
  trl_rng_seed(trl_rng_default(), (uint64_t)luaL_checkinteger(L, 1));
  return 0;
}

// The default generator's state as a 32-byte string, and back (for checkpoints).
static int m_rng_state (lua_State *L) {
  lua_pushlstring(L, (const char *)trl_rng_default()->s, sizeof trl_rng_default()->s);
  return 1;
}

static int m_set_rng_state (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, n == sizeof trl_rng_default()->s, 1, "not a generator state (32 bytes expected)");
  memcpy(trl_rng_default()->s, s, n);
  return 0;
}

// random integers in [lo, hi) (for shuffles and dropout seeds made in Lua)
static int m_randint (lua_State *L) {
  lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
  luaL_argcheck(L, hi > lo, 2, "empty range");
  uint64_t span = (uint64_t)(hi - lo);
  lua_pushinteger(L, lo + (lua_Integer)(trl_rng_next(main_rng()) % span));
  return 1;
}

static int m_rand (lua_State *L) {
  lua_pushnumber(L, trl_rng_uniform01(main_rng()));
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Elementwise, reductions, linear algebra
** =================================================================== */

static int binop (lua_State *L, trl_op op) {
  trl_tensor *a = tensor_or_scalar(L, 1, 2), *b = tensor_or_scalar(L, 2, 1);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_binary(&r->t, op, a, b));
  return 1;
}

#define BINOP(name, OP) static int t_##name (lua_State *L) { return binop(L, TRL_OP_##OP); }
BINOP(add, ADD) BINOP(sub, SUB) BINOP(mul, MUL) BINOP(div, DIV) BINOP(pow, POW)
BINOP(idiv, IDIV) BINOP(mod, MOD) BINOP(maximum, MAXIMUM) BINOP(minimum, MINIMUM)
BINOP(eq, EQ) BINOP(ne, NE) BINOP(lt, LT) BINOP(le, LE) BINOP(gt, GT) BINOP(ge, GE)

static int unop (lua_State *L, trl_op op) {
  trl_tensor *a = trl_checktensor(L, 1);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_unary(&r->t, op, a));
  return 1;
}

#define UNOP(name, OP) static int t_##name (lua_State *L) { return unop(L, TRL_OP_##OP); }
UNOP(neg, NEG) UNOP(abs, ABS) UNOP(exp, EXP) UNOP(log, LOG) UNOP(sqrt, SQRT)
UNOP(square, SQUARE) UNOP(relu, RELU) UNOP(sigmoid, SIGMOID) UNOP(tanh, TANH)

static int t_unm (lua_State *L) { return unop(L, TRL_OP_NEG); }

static int t_clip (lua_State *L) {
  trl_tensor *a = trl_checktensor(L, 1);
  double lo = luaL_checknumber(L, 2), hi = luaL_checknumber(L, 3);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_clip(&r->t, a, lo, hi));
  return 1;
}

static int m_where (lua_State *L) {
  trl_tensor *c = trl_checktensor(L, 1);
  trl_tensor *a = tensor_or_scalar(L, 2, 3), *b = tensor_or_scalar(L, 3, 2);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_where(&r->t, c, a, b));
  return 1;
}

static int reduce (lua_State *L, trl_op op) {
  trl_tensor *a = trl_checktensor(L, 1);
  int dim = lua_isnoneornil(L, 2) ? TRL_ALLDIMS : trl_checkdim(L, 2, a->ndim, trl_op_name(op));
  int keep = lua_toboolean(L, 3);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reduce(&r->t, op, a, dim, keep));
  return 1;
}

#define REDOP(name, OP) static int t_##name (lua_State *L) { return reduce(L, TRL_OP_##OP); }
REDOP(sum, SUM) REDOP(mean, MEAN) REDOP(max, MAX) REDOP(min, MIN)
REDOP(argmax, ARGMAX) REDOP(argmin, ARGMIN)

static int t_matmul (lua_State *L) {
  trl_tensor *a = trl_checktensor(L, 1), *b = trl_checktensor(L, 2);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_matmul(&r->t, a, b));
  return 1;
}

// concat({t1, t2, ...}, dim)
static int m_concat (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 1);
  luaL_argcheck(L, n >= 1, 1, "no tensors to concatenate");
  trl_tensor **ts = (trl_tensor **)lua_newuserdatauv(L, sizeof(trl_tensor *) * (size_t)n, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);  // raw: a value made by __index would not stay anchored
    ts[i] = trl_totensor(L, -1);
    if (ts[i] == NULL) luaL_error(L, "concat: item %d is not a tensor", i + 1);
    lua_pop(L, 1);  // the table keeps it alive
  }
  int dim = lua_isnoneornil(L, 2) ? 0 : trl_checkdim(L, 2, ts[0]->ndim, "concat");
  TBox *r = trl_newbox(L);
  trl_check(L, trl_concat(&r->t, ts, n, dim));
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Shape and views
** =================================================================== */

static int t_shape (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int t_ndim (lua_State *L) {
  lua_pushinteger(L, trl_checktensor(L, 1)->ndim);
  return 1;
}

static int t_numel (lua_State *L) {
  lua_pushinteger(L, trl_numel(trl_checktensor(L, 1)));
  return 1;
}

static int t_dtype (lua_State *L) {
  lua_pushstring(L, trl_dtype_name(trl_checktensor(L, 1)->dtype));
  return 1;
}

static int t_len (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
  return 1;
}

static int t_reshape (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int64_t shape[TRL_MAXDIM];
  int nd = trl_checkshape(L, 2, shape);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reshape(&r->t, t, nd, shape));
  return 1;
}

static int t_transpose (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int perm[TRL_MAXDIM];
  for (int i = 0; i < t->ndim; i++) perm[i] = t->ndim - 1 - i;  // no dims: reverse all (NumPy)
  if (!lua_isnoneornil(L, 2)) {
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    int d0 = trl_checkdim(L, 2, t->ndim, "transpose"), d1 = trl_checkdim(L, 3, t->ndim, "transpose");
    perm[d0] = d1;
    perm[d1] = d0;
  }
  TBox *r = trl_newbox(L);
  trl_check(L, trl_permute(&r->t, t, perm));
  return 1;
}

static int t_permute (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int perm[TRL_MAXDIM];
  int64_t p[TRL_MAXDIM];
  int n = trl_checkshape(L, 2, p);
  if (n != t->ndim) luaL_error(L, "permute: %d dims given for a %d-dim tensor", n, t->ndim);
  for (int i = 0; i < n; i++) perm[i] = (int)(p[i] > 0 ? p[i] - 1 : p[i] + n);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_permute(&r->t, t, perm));
  return 1;
}

static int t_expand (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int64_t shape[TRL_MAXDIM];
  int nd = trl_checkshape(L, 2, shape);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_expand(&r->t, t, nd, shape));
  return 1;
}

static int t_squeeze (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int64_t shape[TRL_MAXDIM];
  int nd = 0;
  int only = lua_isnoneornil(L, 2) ? -1 : trl_checkdim(L, 2, t->ndim, "squeeze");
  if (only >= 0 && t->shape[only] != 1) {
    char b[TRL_SHAPELEN];
    luaL_error(L, "squeeze: dim %d of %s is not 1", only + 1, trl_tensor_shape_str(b, t));
  }
  for (int i = 0; i < t->ndim; i++)
    if (!(t->shape[i] == 1 && (only < 0 || only == i))) shape[nd++] = t->shape[i];
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reshape(&r->t, t, nd, shape));
  return 1;
}

static int t_unsqueeze (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int d = trl_checkdim(L, 2, t->ndim + 1, "unsqueeze");
  int64_t shape[TRL_MAXDIM];
  if (t->ndim >= TRL_MAXDIM) luaL_error(L, "unsqueeze: tensor already has %d dims", TRL_MAXDIM);
  for (int i = 0, j = 0; i <= t->ndim; i++) shape[i] = i == d ? 1 : t->shape[j++];
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reshape(&r->t, t, t->ndim + 1, shape));
  return 1;
}

static int t_flatten (lua_State *L) {  // (N, ...) -> (N, rest), as Gluon's Flatten
  trl_tensor *t = trl_checktensor(L, 1);
  int64_t shape[2] = {t->ndim ? t->shape[0] : 1, -1};
  if (t->ndim && t->shape[0] == 0) shape[1] = 0;
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reshape(&r->t, t, 2, shape));
  return 1;
}

// Resolve a 1-based inclusive position (negative from the end) to 0-based.
static int64_t posrel (lua_Integer p, int64_t n) {
  return p > 0 ? p - 1 : (p < 0 ? n + p : -1);
}

// t:slice(dim, first, last [, step]): inclusive, 1-based, negatives from the end; a view.
static int t_slice (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  int d = trl_checkdim(L, 2, t->ndim, "slice");
  int64_t n = t->shape[d];
  int64_t a = posrel(luaL_optinteger(L, 3, 1), n), b = posrel(luaL_optinteger(L, 4, -1), n);
  lua_Integer step = luaL_optinteger(L, 5, 1);
  if (a < 0 || a > n || b < -1 || b >= n || step < 1) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "slice: range %d..%d (step %d) out of bounds for dim %d of %s",
               (int)luaL_optinteger(L, 3, 1), (int)luaL_optinteger(L, 4, -1), (int)step, d + 1,
               trl_tensor_shape_str(s, t));
  }
  if (b < a) b = a - 1;  // empty
  TBox *r = trl_newbox(L);
  trl_check(L, trl_slice(&r->t, t, d, a, b + 1, step));
  return 1;
}

static int t_narrow (lua_State *L) {  // narrow(dim, first, length)
  trl_tensor *t = trl_checktensor(L, 1);
  int d = trl_checkdim(L, 2, t->ndim, "narrow");
  int64_t a = posrel(luaL_checkinteger(L, 3), t->shape[d]);
  lua_Integer len = luaL_checkinteger(L, 4);
  if (a < 0 || len < 0 || a + len > t->shape[d]) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "narrow: %d items from %d out of bounds for dim %d of %s", (int)len,
               (int)luaL_checkinteger(L, 3), d + 1, trl_tensor_shape_str(s, t));
  }
  TBox *r = trl_newbox(L);
  trl_check(L, trl_slice(&r->t, t, d, a, a + len, 1));
  return 1;
}

// select(dim, index): drops 'dim' (recorded as slice + reshape)
static void push_select (lua_State *L, trl_tensor *t, int d, lua_Integer idx) {
  int64_t i = posrel(idx, t->shape[d]);
  if (i < 0 || i >= t->shape[d]) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "index %d out of range for dim %d of %s", (int)idx, d + 1, trl_tensor_shape_str(s, t));
  }
  TBox *tmp = trl_newbox(L);
  trl_check(L, trl_slice(&tmp->t, t, d, i, i + 1, 1));
  int64_t shape[TRL_MAXDIM];
  for (int k = 0, j = 0; k < t->ndim; k++) if (k != d) shape[j++] = t->shape[k];
  TBox *r = trl_newbox(L);
  trl_check(L, trl_reshape(&r->t, tmp->t, t->ndim - 1, shape));
  lua_remove(L, -2);
}

static int t_select (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  push_select(L, t, trl_checkdim(L, 2, t->ndim, "select"), luaL_checkinteger(L, 3));
  return 1;
}

// x[spec]: an integer selects along dim 1; a table has one entry per dim: an integer selects,
// {first, last [, step]} slices (inclusive), {} keeps the whole dim.
static void push_index (lua_State *L, int self, int key) {
  trl_tensor *t = trl_checktensor(L, self);
  if (lua_isinteger(L, key)) {
    if (t->ndim == 0) luaL_error(L, "cannot index a 0-dim tensor");
    push_select(L, t, 0, lua_tointeger(L, key));
    return;
  }
  luaL_checktype(L, key, LUA_TTABLE);
  int n = (int)luaL_len(L, key);
  if (n > t->ndim) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "index: %d entries for a tensor of shape %s", n, trl_tensor_shape_str(s, t));
  }
  lua_pushvalue(L, self);
  int d = 0;  // current dim in the (shrinking) result
  for (int i = 1; i <= n; i++) {
    trl_tensor *cur = trl_checktensor(L, -1);
    lua_geti(L, key, i);
    if (lua_isinteger(L, -1)) {
      lua_Integer v = lua_tointeger(L, -1);
      lua_pop(L, 1);
      push_select(L, cur, d, v);
    } else if (lua_istable(L, -1)) {
      int sp = lua_gettop(L);
      lua_geti(L, sp, 1); lua_geti(L, sp, 2); lua_geti(L, sp, 3);
      lua_Integer a = luaL_optinteger(L, -3, 1), b = luaL_optinteger(L, -2, -1), st = luaL_optinteger(L, -1, 1);
      if (luaL_len(L, sp) == 1) b = a;  // {k} keeps dim k..k
      lua_settop(L, sp - 1);
      int64_t len = cur->shape[d], za = posrel(a, len), zb = posrel(b, len);
      if (za < 0 || za > len || zb < -1 || zb >= len || st < 1) {
        char s[TRL_SHAPELEN];
        luaL_error(L, "index: range %d..%d out of bounds for dim %d of %s", (int)a, (int)b, i,
                   trl_tensor_shape_str(s, t));
      }
      if (zb < za) zb = za - 1;
      TBox *r = trl_newbox(L);
      trl_check(L, trl_slice(&r->t, cur, d, za, zb + 1, st));
      d++;
    } else {
      luaL_error(L, "index: entry %d must be an integer or a {first, last} table", i);
    }
    lua_remove(L, -2);
  }
}

/* }================================================================== */

/* {==================================================================
** Conversion and copies
** =================================================================== */

static void push_elem (lua_State *L, const trl_tensor *t, int64_t i) {
  if (t->dtype == TRL_F32) lua_pushnumber(L, trl_get(t, i));
  else lua_pushinteger(L, trl_geti(t, i));
}

static int t_asscalar (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  if (trl_numel(t) != 1) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "asscalar: tensor of shape %s has %d elements, expected 1",
               trl_tensor_shape_str(s, t), (int)trl_numel(t));
  }
  push_elem(L, t, 0);
  return 1;
}

static void totable_rec (lua_State *L, const trl_tensor *t, int d, int64_t *pos) {
  lua_createtable(L, (int)t->shape[d], 0);
  for (int64_t i = 0; i < t->shape[d]; i++) {
    if (d + 1 < t->ndim) totable_rec(L, t, d + 1, pos);
    else push_elem(L, t, (*pos)++);
    lua_rawseti(L, -2, i + 1);
  }
}

static int t_totable (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  if (t->ndim == 0) { push_elem(L, t, 0); return 1; }
  luaL_checkstack(L, t->ndim + 4, "totable");
  int64_t pos = 0;
  totable_rec(L, t, 0, &pos);
  return 1;
}

static int t_copy (lua_State *L) {  // a contiguous copy, recorded for autograd
  trl_tensor *t = trl_checktensor(L, 1);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_copy(&r->t, t, t->dtype));
  return 1;
}

static int t_astype (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  trl_dtype dt = optdtype(L, 2, TRL_F32);
  if (dt == t->dtype && !lua_toboolean(L, 3)) { lua_settop(L, 1); return 1; }  // Gluon: copy=True
  TBox *r = trl_newbox(L);
  trl_check(L, trl_copy(&r->t, t, dt));
  return 1;
}

static int t_contiguous (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  if (trl_is_contiguous(t)) { lua_settop(L, 1); return 1; }
  TBox *r = trl_newbox(L);
  trl_check(L, trl_copy(&r->t, t, t->dtype));
  return 1;
}

static int t_is_contiguous (lua_State *L) {
  lua_pushboolean(L, trl_is_contiguous(trl_checktensor(L, 1)));
  return 1;
}

// x:fill(v) in place; returns x
static int t_fill (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  trl_fill(t, luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

// x:set(src): copy src (tensor or number, broadcast) into x in place; returns x
static int t_set (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) trl_fill(t, lua_tonumber(L, 2));
  else trl_check(L, trl_copy_into(t, trl_checktensor(L, 2)));
  lua_settop(L, 1);
  return 1;
}

static int t_detach (lua_State *L) {  // same data, no autograd history
  trl_tensor *t = trl_checktensor(L, 1);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_tensor_alias(&r->t, t));
  return 1;
}

// An identity for the storage, so tests and users can see that views share memory.
static int t_storage_id (lua_State *L) {
  lua_pushfstring(L, "%p", (void *)trl_checktensor(L, 1)->storage);
  return 1;
}

// version() -> integer: the storage's stamp (trl_tensor_touch), which every write through
// the tensor API (set, fill, t[i] = v, optimizer updates, ...) changes.
static int t_version (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_tensor_stamp(trl_checktensor(L, 1)));
  return 1;
}

static int t_release (lua_State *L) {  // __gc and __close
  TBox *b = (TBox *)luaL_checkudata(L, 1, TRL_TENSOR_MT);
  trl_tensor_release(b->t);
  b->t = NULL;
  return 0;
}

/* }================================================================== */

/* {==================================================================
** Autograd
** =================================================================== */

static trl_grad_req checkreq (lua_State *L, int idx) {
  static const char *const names[] = {"write", "add", "null", NULL};
  return (trl_grad_req)luaL_checkoption(L, idx, "write", names);
}

static int t_attach_grad (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  trl_check(L, trl_attach_grad(t, checkreq(L, 2)));
  lua_settop(L, 1);
  return 1;
}

static int t_set_grad_req (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  trl_grad_req req = checkreq(L, 2);
  if (req != TRL_GRAD_NULL && t->grad == NULL) trl_check(L, trl_attach_grad(t, req));
  else trl_set_grad_req(t, req);
  return 0;
}

static int t_backward (lua_State *L) {
  trl_tensor *t = trl_checktensor(L, 1);
  trl_tensor *head = lua_isnoneornil(L, 2) ? NULL : trl_checktensor(L, 2);
  trl_check(L, trl_backward(t, head, lua_toboolean(L, 3)));
  return 0;
}

static int m_tape_set (lua_State *L) {
  int prev = trl_tape_set(lua_toboolean(L, 1), lua_toboolean(L, 2));
  lua_pushboolean(L, prev & 1);
  lua_pushboolean(L, prev >> 1);
  return 2;
}

static int m_tape_state (lua_State *L) {
  lua_pushboolean(L, trl_tape_is_recording());
  lua_pushboolean(L, trl_tape_is_training());
  return 2;
}

/* }================================================================== */

/* {==================================================================
** Printing (NumPy-like, summarized past 1000 elements)
** =================================================================== */

typedef struct { int summarize, integral, sci, width, prec; } fmt_t;

static int shown (const trl_tensor *t, const fmt_t *f, int d, int64_t i) {
  return !f->summarize || t->shape[d] <= 6 || i < 3 || i >= t->shape[d] - 3;
}

static void fmt_elem (char *buf, size_t n, const trl_tensor *t, const fmt_t *f, int64_t i) {
  if (t->dtype != TRL_F32) { snprintf(buf, n, "%lld", (long long)trl_geti(t, i)); return; }
  double v = trl_get(t, i);
  if (isnan(v)) snprintf(buf, n, "nan");
  else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
  else if (f->sci) snprintf(buf, n, "%.*e", f->prec, v);
  else if (f->integral) snprintf(buf, n, "%.0f.", v);
  else snprintf(buf, n, "%.*f", f->prec, v);
}

static void print_rec (luaL_Buffer *B, const trl_tensor *t, const fmt_t *f, int d, int64_t base,
                       int indent) {
  char buf[64];
  luaL_addchar(B, '[');
  int64_t stride = 1;
  for (int k = d + 1; k < t->ndim; k++) stride *= t->shape[k];
  for (int64_t i = 0; i < t->shape[d]; i++) {
    if (!shown(t, f, d, i)) {
      if (i == 3) {
        if (d + 1 == t->ndim) luaL_addstring(B, " ...");
        else { luaL_addstring(B, "\n"); for (int k = 0; k <= indent; k++) luaL_addchar(B, ' '); luaL_addstring(B, "...,"); }
      }
      continue;
    }
    if (d + 1 == t->ndim) {
      if (i > 0) luaL_addchar(B, ' ');
      fmt_elem(buf, sizeof buf, t, f, base + i);
      for (int k = (int)strlen(buf); k < f->width; k++) luaL_addchar(B, ' ');
      luaL_addstring(B, buf);
    } else {
      if (i > 0) {
        for (int k = d + 1; k < t->ndim; k++) luaL_addchar(B, '\n');
        for (int k = 0; k <= indent; k++) luaL_addchar(B, ' ');
      }
      print_rec(B, t, f, d + 1, base + i * stride, indent + 1);
    }
  }
  luaL_addchar(B, ']');
}

// Choose one format for every element that will be printed.
static void choose_fmt (const trl_tensor *t, fmt_t *f) {
  int64_t n = trl_numel(t);
  f->summarize = n > 1000;
  f->integral = 1; f->sci = 0; f->prec = 4; f->width = 0;
  double amax = 0, amin = INFINITY;
  char buf[64];
  for (int64_t i = 0; i < n; i++) {
    int show = 1;  // skip hidden elements when summarizing
    if (f->summarize) {
      int64_t r = i;
      for (int d = t->ndim - 1; d >= 0 && show; d--) { show = shown(t, f, d, r % t->shape[d]); r /= t->shape[d]; }
      if (!show) continue;
    }
    if (t->dtype == TRL_F32) {
      double v = trl_get(t, i);
      if (isfinite(v)) {
        if (v != floor(v)) f->integral = 0;
        if (fabs(v) > amax) amax = fabs(v);
        if (v != 0 && fabs(v) < amin) amin = fabs(v);
      }
    }
  }
  if (t->dtype == TRL_F32 && (amax >= 1e8 || (!f->integral && (amax >= 1e5 || amin < 1e-4))))
    f->sci = 1, f->integral = 0;
  for (int64_t i = 0; i < n; i++) {
    if (f->summarize) {
      int64_t r = i; int show = 1;
      for (int d = t->ndim - 1; d >= 0 && show; d--) { show = shown(t, f, d, r % t->shape[d]); r /= t->shape[d]; }
      if (!show) continue;
    }
    fmt_elem(buf, sizeof buf, t, f, i);
    if ((int)strlen(buf) > f->width) f->width = (int)strlen(buf);
  }
}

static int t_tostring (lua_State *L) {
  TBox *b = (TBox *)luaL_checkudata(L, 1, TRL_TENSOR_MT);
  if (b->t == NULL) { lua_pushliteral(L, "<released tensor>"); return 1; }
  trl_tensor *t = b->t;
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  fmt_t f;
  choose_fmt(t, &f);
  if (t->ndim == 0 && !t->requires_grad) {  // a scalar prints like a number: 15, 0.5
    char buf[64];
    if (t->dtype == TRL_F32) snprintf(buf, sizeof buf, "%.7g", trl_get(t, 0));
    else snprintf(buf, sizeof buf, "%lld", (long long)trl_geti(t, 0));
    lua_pushstring(L, buf);
    return 1;
  }
  if (t->ndim == 0) {
    char buf[64];
    fmt_elem(buf, sizeof buf, t, &f, 0);
    luaL_addstring(&B, buf);
  } else {
    print_rec(&B, t, &f, 0, 0, 0);
  }
  luaL_addstring(&B, "\n<Tensor ");
  char buf[64];
  for (int i = 0; i < t->ndim; i++) {
    snprintf(buf, sizeof buf, i ? "x%lld" : "%lld", (long long)t->shape[i]);
    luaL_addstring(&B, buf);
  }
  if (t->ndim == 0) luaL_addstring(&B, "scalar");
  luaL_addchar(&B, ' ');
  luaL_addstring(&B, trl_dtype_name(t->dtype));
  if (t->requires_grad) luaL_addstring(&B, t->node ? " grad_fn=" : " requires_grad");
  if (t->node) luaL_addstring(&B, trl_op_name(t->node->op));
  luaL_addchar(&B, '>');
  luaL_pushresult(&B);
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Metamethods
** =================================================================== */

static int t_equal (lua_State *L) {  // '==': same shape and every element equal (torch.equal)
  trl_tensor *a = trl_totensor(L, 1), *b = trl_totensor(L, 2);
  if (!a || !b || !trl_same_shape(a, b)) { lua_pushboolean(L, 0); return 1; }
  int64_t n = trl_numel(a);
  int eq = 1;
  for (int64_t i = 0; i < n && eq; i++) eq = trl_get(a, i) == trl_get(b, i);
  lua_pushboolean(L, eq);
  return 1;
}

static double scalar_value (lua_State *L, int idx, const char *op) {
  if (lua_type(L, idx) == LUA_TNUMBER) return lua_tonumber(L, idx);
  trl_tensor *t = trl_checktensor(L, idx);
  if (trl_numel(t) != 1) {
    char s[TRL_SHAPELEN];
    luaL_error(L, "'%s' compares single-element tensors; this one is %s (use :lt/:le/:gt/:ge for "
               "elementwise masks)", op, trl_tensor_shape_str(s, t));
  }
  return trl_get(t, 0);
}

static int t_lt_meta (lua_State *L) {
  lua_pushboolean(L, scalar_value(L, 1, "<") < scalar_value(L, 2, "<"));
  return 1;
}

static int t_le_meta (lua_State *L) {
  lua_pushboolean(L, scalar_value(L, 1, "<=") <= scalar_value(L, 2, "<="));
  return 1;
}

static int t_index (lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "grad") == 0) {
      trl_tensor *t = trl_checktensor(L, 1);
      if (t->grad == NULL) lua_pushnil(L);
      else { TBox *b = trl_newbox(L); trl_tensor_retain(t->grad); b->t = t->grad; }
      return 1;
    }
    if (strcmp(k, "grad_req") == 0) {
      trl_tensor *t = trl_checktensor(L, 1);
      static const char *const names[] = {"write", "add", "null"};
      lua_pushstring(L, t->grad ? names[t->grad_req] : "null");
      return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
  }
  push_index(L, 1, 2);
  // a 1-element result of integer indexing on a 1-D tensor is a number (Torch7, NumPy)
  trl_tensor *r = trl_totensor(L, -1);
  if (r && r->ndim == 0 && lua_isinteger(L, 2)) push_elem(L, r, 0);
  return 1;
}

static int t_newindex (lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "grad_req") == 0) {
      lua_pushcfunction(L, t_set_grad_req);
      lua_pushvalue(L, 1);
      lua_pushvalue(L, 3);
      lua_call(L, 2, 0);
      return 0;
    }
    return luaL_error(L, "cannot set field '%s' of a tensor", k);
  }
  push_index(L, 1, 2);
  trl_tensor *dst = trl_checktensor(L, -1);
  if (lua_type(L, 3) == LUA_TNUMBER) trl_fill(dst, lua_tonumber(L, 3));
  else trl_check(L, trl_copy_into(dst, trl_checktensor(L, 3)));
  return 0;
}

/* }================================================================== */

/* {==================================================================
** Runtime
** =================================================================== */

static int m_live (lua_State *L) {
  lua_pushinteger(L, trl_tensor_live());
  return 1;
}

static int m_mem_bytes (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_mem_bytes());
  return 1;
}

static int m_mem_peak (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_mem_peak());
  return 1;
}

// fresh_grads(on) -> previous: see trl_tape_set_fresh (tests compare both ways)
static int m_fresh_grads (lua_State *L) {
  lua_pushboolean(L, trl_tape_set_fresh(lua_toboolean(L, 1)));
  return 1;
}

// grads_reused() -> gradient buffers backward handed on in place so far (trl_tape_reused),
// and of the shared ones, those copied before a node added to them (trl_tape_unshared)
static int m_grads_reused (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_tape_reused());
  lua_pushinteger(L, (lua_Integer)trl_tape_unshared());
  return 2;
}

static int m_set_num_threads (lua_State *L) {
  trl_set_num_threads((int)luaL_checkinteger(L, 1));
  return 0;
}

static int m_get_num_threads (lua_State *L) {
  lua_pushinteger(L, trl_get_num_threads());
  return 1;
}

// c = a b straight through sgemm on existing contiguous (M,K), (K,N), (M,N) float32 buffers: no
// checks beyond the shapes, no allocation. The baseline that bench/matmul.lua compares with.
static int m_sgemm_raw (lua_State *L) {
  trl_tensor *a = trl_checktensor(L, 1), *b = trl_checktensor(L, 2), *c = trl_checktensor(L, 3);
  int ok = a->ndim == 2 && b->ndim == 2 && c->ndim == 2 && a->shape[1] == b->shape[0] &&
           c->shape[0] == a->shape[0] && c->shape[1] == b->shape[1] && trl_is_contiguous(a) &&
           trl_is_contiguous(b) && trl_is_contiguous(c) && a->dtype == TRL_F32 &&
           b->dtype == TRL_F32 && c->dtype == TRL_F32;
  if (!ok) luaL_error(L, "sgemm_raw: needs contiguous float32 (M,K), (K,N), (M,N)");
  int M = (int)a->shape[0], K = (int)a->shape[1], N = (int)b->shape[1];
  trl_sgemm(0, 0, M, N, K, 1.0f, trl_f32(a), K, trl_f32(b), N, 0.0f, trl_f32(c), N);
  return 0;
}

static int m_clock (lua_State *L) {  // monotonic seconds, for timing
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
  return 1;
}

static int m_is_tensor (lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, TRL_TENSOR_MT) != NULL);
  return 1;
}

/* }================================================================== */

static const luaL_Reg methods[] = {
  {"shape", t_shape}, {"ndim", t_ndim}, {"numel", t_numel}, {"size", t_numel}, {"dtype", t_dtype},
  {"reshape", t_reshape}, {"transpose", t_transpose}, {"permute", t_permute},
  {"expand", t_expand}, {"broadcast_to", t_expand}, {"squeeze", t_squeeze},
  {"unsqueeze", t_unsqueeze}, {"expand_dims", t_unsqueeze}, {"flatten", t_flatten},
  {"slice", t_slice}, {"narrow", t_narrow}, {"select", t_select},
  {"add", t_add}, {"sub", t_sub}, {"mul", t_mul}, {"div", t_div}, {"pow", t_pow},
  {"idiv", t_idiv}, {"mod", t_mod}, {"maximum", t_maximum}, {"minimum", t_minimum},
  {"eq", t_eq}, {"ne", t_ne}, {"lt", t_lt}, {"le", t_le}, {"gt", t_gt}, {"ge", t_ge},
  {"neg", t_neg}, {"abs", t_abs}, {"exp", t_exp}, {"log", t_log}, {"sqrt", t_sqrt},
  {"square", t_square}, {"relu", t_relu}, {"sigmoid", t_sigmoid}, {"tanh", t_tanh},
  {"clip", t_clip}, {"matmul", t_matmul}, {"dot", t_matmul},
  {"sum", t_sum}, {"mean", t_mean}, {"max", t_max}, {"min", t_min},
  {"argmax", t_argmax}, {"argmin", t_argmin},
  {"asscalar", t_asscalar}, {"item", t_asscalar}, {"totable", t_totable}, {"copy", t_copy},
  {"astype", t_astype}, {"contiguous", t_contiguous}, {"is_contiguous", t_is_contiguous},
  {"fill", t_fill}, {"set", t_set}, {"detach", t_detach}, {"storage_id", t_storage_id},
  {"version", t_version},
  {"attach_grad", t_attach_grad}, {"backward", t_backward}, {"release", t_release},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__add", t_add}, {"__sub", t_sub}, {"__mul", t_mul}, {"__div", t_div}, {"__pow", t_pow},
  {"__idiv", t_idiv}, {"__mod", t_mod}, {"__unm", t_unm}, {"__eq", t_equal},
  {"__lt", t_lt_meta}, {"__le", t_le_meta}, {"__len", t_len}, {"__tostring", t_tostring},
  {"__newindex", t_newindex}, {"__gc", t_release}, {"__close", t_release},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"array", m_array}, {"zeros", m_zeros}, {"ones", m_ones}, {"full", m_full},
  {"arange", m_arange}, {"uniform", m_uniform}, {"normal", m_normal}, {"seed", m_seed},
  {"rng_state", m_rng_state}, {"set_rng_state", m_set_rng_state}, {"randint", m_randint}, {"rand", m_rand}, {"where", m_where}, {"concat", m_concat},
  {"matmul", t_matmul}, {"maximum", t_maximum}, {"minimum", t_minimum},
  {"tape_set", m_tape_set}, {"tape_state", m_tape_state},
  {"mem_peak", m_mem_peak}, {"fresh_grads", m_fresh_grads}, {"grads_reused", m_grads_reused}, {"clock", m_clock}, {"sgemm_raw", m_sgemm_raw}, {"live", m_live}, {"mem_bytes", m_mem_bytes}, {"is_tensor", m_is_tensor},
  {"set_num_threads", m_set_num_threads}, {"get_num_threads", m_get_num_threads},
  {NULL, NULL}
};

int luaopen_trl_tensor (lua_State *L) {
  luaL_newmetatable(L, TRL_TENSOR_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");        // metatable.methods: Lua code may add methods here
  lua_pushcclosure(L, t_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  luaL_getmetatable(L, TRL_TENSOR_MT);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "methods");
  lua_pop(L, 1);
  return 1;
}
