/*
** l_data.c: module 'trl._data', the C side of gluon.data: transform chains run through
** core/pipeline.c on the data generator, and the native batch loader as a userdata
** ("trl.data.Loader") whose __gc/__close join its worker threads.
*/
#include <string.h>

#include "image.h"
#include "l_util.h"
#include "pipeline.h"

#define LOADER_MT "trl.data.Loader"

// The generator behind Lua-side transforms: seeded by data.seed(n) or per sample by the
// DataLoader. The Lua state is single-threaded, so one static is enough.
static trl_rng data_rng;
static int data_rng_seeded = 0;

static trl_rng *getrng (void) {
  if (!data_rng_seeded) trl_rng_seed(&data_rng, 0), data_rng_seeded = 1;
  return &data_rng;
}

/* {==================================================================
** Op tables: {kind = 'resize', w = 224, h = 224, n = 3, f = {...}}
** =================================================================== */

static void checkop (lua_State *L, int idx, int pos, trl_pipe_op *op) {
  memset(op, 0, sizeof *op);
  if (lua_getfield(L, idx, "kind") != LUA_TSTRING)
    luaL_error(L, "transforms: op %d has no 'kind' string", pos);
  int k = trl_pipe_kind_from_name(lua_tostring(L, -1));
  if (k < 0) luaL_error(L, "transforms: unknown op kind '%s'", lua_tostring(L, -1));
  op->kind = (trl_pipe_kind)k;
  lua_pop(L, 1);
  static const char *const ints[] = { "w", "h", "n" };
  int *dst[] = { &op->w, &op->h, &op->n };
  for (int i = 0; i < 3; i++) {
    lua_getfield(L, idx, ints[i]);
    if (!lua_isnil(L, -1)) {
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok || v < -1000000 || v > 1000000)
        luaL_error(L, "transforms: op '%s' field '%s' must be an integer",
                   trl_pipe_kind_name(op->kind), ints[i]);
      *dst[i] = (int)v;
    }
    lua_pop(L, 1);
  }
  if (lua_getfield(L, idx, "f") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    if (n > 8) luaL_error(L, "transforms: op '%s' has %d parameters, at most 8",
                          trl_pipe_kind_name(op->kind), (int)n);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      op->f[i - 1] = (float)luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (op->kind == TRL_PIPE_NORMALIZE && (op->n < 1 || op->n > 4))
    luaL_error(L, "Normalize: mean and std need 1 to 4 values, got %d", op->n);
}

// The ops at 'idx' (a list of op tables) in a userdata pushed on the stack.
static trl_pipe_op *checkops (lua_State *L, int idx, int *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *n = (int)luaL_len(L, idx);
  trl_pipe_op *ops = lua_newuserdatauv(L, ((size_t)*n + 1) * sizeof(trl_pipe_op), 0);
  for (int i = 0; i < *n; i++) {
    lua_geti(L, idx, i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    checkop(L, lua_gettop(L), i + 1, &ops[i]);
    lua_pop(L, 1);
  }
  return ops;
}

/* }================================================================== */

/* {==================================================================
** Module functions
** =================================================================== */

static int m_seed (lua_State *L) {
  trl_rng_seed(&data_rng, (uint64_t)luaL_checkinteger(L, 1));
  data_rng_seeded = 1;
  return 0;
}

// A 63-bit draw from the data generator (a DataLoader's default seed).
static int m_draw (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(trl_rng_next(getrng()) >> 1));
  return 1;
}

// Reseed the data generator for sample 'index' of 'epoch' (the Lua fallback path, so that
// built-in transforms draw exactly as the native loader does).
static int m_sample_seed (lua_State *L) {
  trl_pipe_sample_rng(getrng(), (uint64_t)luaL_checkinteger(L, 1),
                      (uint64_t)luaL_checkinteger(L, 2), (uint64_t)luaL_checkinteger(L, 3));
  return 0;
}

// permutation(n, seed, epoch): a shuffled list of 1..n (Fisher-Yates).
static int m_permutation (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= (lua_Integer)1 << 40, 1, "bad length");
  trl_rng r;
  trl_pipe_sample_rng(&r, (uint64_t)luaL_checkinteger(L, 2), (uint64_t)luaL_checkinteger(L, 3),
                      UINT64_MAX);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_pushinteger(L, i);
    lua_rawseti(L, -2, i);
  }
  for (lua_Integer i = n; i > 1; i--) {
    lua_Integer j = 1 + (lua_Integer)(trl_rng_uniform01(&r) * (double)i);
    if (j > i) j = i;
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -2, j);
    lua_rawseti(L, -3, i);
    lua_rawseti(L, -2, j);
  }
  return 1;
}

// apply(ops, img) -> new tensor, drawing from the data generator.
static int m_apply (lua_State *L) {
  int n;
  trl_tensor *x = trl_checktensor(L, 2);
  trl_pipe_op *ops = checkops(L, 1, &n);
  TBox *box = trl_newbox(L);
  trl_check(L, trl_pipe_apply(&box->t, ops, n, x, getrng()));
  return 1;
}

// check(ops, channels) -> dtype, {shape} (-1 where it depends on the image) | nil, msg
static int m_check (lua_State *L) {
  int n, ndim;
  trl_dtype dt;
  int64_t shape[3];
  int channels = (int)luaL_checkinteger(L, 2);  // before checkops pushes its scratch
  trl_pipe_op *ops = checkops(L, 1, &n);
  if (trl_pipe_check(ops, n, -1, -1, channels, &dt, &ndim, shape) != TRL_OK)
    return trl_pushfail(L);
  lua_pushstring(L, trl_dtype_name(dt));
  lua_createtable(L, ndim, 0);
  for (int i = 0; i < ndim; i++) {
    lua_pushinteger(L, shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 2;
}

// rrc_box(w, h, out_w, out_h, smin, smax, rmin, rmax) -> x0, y0, cw, ch, fitted (x0/y0 0-based)
static int m_rrc_box (lua_State *L) {
  int a[4], box[4];
  float f[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (int)luaL_checkinteger(L, i + 1);
    luaL_argcheck(L, a[i] > 0, i + 1, "sizes must be positive");
  }
  for (int i = 0; i < 4; i++) f[i] = (float)luaL_checknumber(L, i + 5);
  int fitted = trl_pipe_rrc_box(getrng(), a[0], a[1], a[2], a[3], f, box);
  for (int i = 0; i < 4; i++) lua_pushinteger(L, box[i]);
  lua_pushboolean(L, fitted);
  return 5;
}

// imread(path, flag) -> uint8 (H,W,C) tensor | nil, msg (the dataset's decoder, the same
// call the loader's workers make).
static int m_imread (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flag = (int)luaL_optinteger(L, 2, 1);
  TBox *box = trl_newbox(L);
  if (trl_image_read(&box->t, path, flag) != TRL_OK) return trl_pushfail(L);
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Loader userdata
** =================================================================== */

typedef struct LBox { trl_loader *ld; } LBox;

static trl_loader *checkloader (lua_State *L) {
  LBox *b = luaL_checkudata(L, 1, LOADER_MT);
  if (b->ld == NULL) luaL_error(L, "attempt to use a closed DataLoader pipeline");
  return b->ld;
}

// loader{paths = {...}, labels = {...}, flag = 1, ops = {...}, num_workers = 2, prefetch = 4}
static int m_loader (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  LBox *b = lua_newuserdatauv(L, sizeof(LBox), 0);     // box first: nothing can leak
  b->ld = NULL;
  luaL_setmetatable(L, LOADER_MT);
  int ubox = lua_gettop(L);
  if (lua_getfield(L, 1, "paths") != LUA_TTABLE) luaL_error(L, "loader: 'paths' must be a table");
  int ipaths = lua_gettop(L);
  if (lua_getfield(L, 1, "labels") != LUA_TTABLE) luaL_error(L, "loader: 'labels' must be a table");
  int ilabels = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, ipaths);
  if ((lua_Integer)lua_rawlen(L, ilabels) != n)
    luaL_error(L, "loader: %d paths but %d labels", (int)n, (int)lua_rawlen(L, ilabels));
  const char **paths = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(char *), 0);
  int64_t *labels = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(int64_t), 0);
  for (lua_Integer i = 0; i < n; i++) {
    // raw access and real strings only: what 'paths' holds stays anchored there
    if (lua_rawgeti(L, ipaths, i + 1) != LUA_TSTRING)
      luaL_error(L, "loader: path %d is not a string", (int)i + 1);
    paths[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, ilabels, i + 1);
    int ok;
    labels[i] = lua_tointegerx(L, -1, &ok);
    if (!ok) luaL_error(L, "loader: label %d is not an integer", (int)i + 1);
    lua_pop(L, 1);
  }
  int n_ops;
  lua_getfield(L, 1, "ops");
  trl_pipe_op *ops = checkops(L, lua_gettop(L), &n_ops);
  lua_getfield(L, 1, "flag");
  int flag = (int)luaL_optinteger(L, -1, 1);
  lua_getfield(L, 1, "num_workers");
  int workers = (int)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "prefetch");
  int prefetch = (int)luaL_optinteger(L, -1, 0);
  if (workers < 0 || workers > 256)
    luaL_error(L, "DataLoader: num_workers must be 0..256, got %d", workers);
  trl_check(L, trl_loader_new(&b->ld, n, paths, labels, flag, ops, n_ops, workers, prefetch));
  lua_settop(L, ubox);
  return 1;
}

// ld:start(order (1-based indices), batch_size, seed, epoch)
static int l_start (lua_State *L) {
  trl_loader *ld = checkloader(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  int bs = (int)luaL_checkinteger(L, 3);
  uint64_t seed = (uint64_t)luaL_checkinteger(L, 4), epoch = (uint64_t)luaL_checkinteger(L, 5);
  int64_t *order = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(int64_t), 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, 2, i + 1);
    order[i] = (int64_t)lua_tointeger(L, -1) - 1;
    lua_pop(L, 1);
  }
  trl_check(L, trl_loader_start(ld, order, n, bs, seed, epoch));
  return 0;
}

// ld:next() -> data, label | nil at the end; raises (naming the file) on a bad image.
static int l_next (lua_State *L) {
  trl_loader *ld = checkloader(L);
  TBox *d = trl_newbox(L);
  TBox *y = trl_newbox(L);
  trl_status st = trl_loader_next(ld, &d->t, &y->t);
  if (st != TRL_OK) {
    trl_loader_stop(ld);                               // join before raising
    return trl_check(L, st);
  }
  if (d->t == NULL) {
    lua_pushnil(L);
    return 1;
  }
  // Workers allocate off the main thread, where mem.c's GC hook never runs: tell the
  // collector about the batch so that spent batches are freed at the pace they arrive.
  size_t kb = (size_t)(trl_numel(d->t) * (int64_t)trl_dtype_size(d->t->dtype)) >> 10;
  lua_gc(L, LUA_GCSTEP, (int)(kb > 1 << 20 ? 1 << 20 : kb));
  return 2;
}

static int l_stop (lua_State *L) {
  trl_loader_stop(checkloader(L));
  return 0;
}

static int l_nthreads (lua_State *L) {
  lua_pushinteger(L, trl_loader_nthreads(checkloader(L)));
  return 1;
}

static int l_gc (lua_State *L) {
  LBox *b = luaL_checkudata(L, 1, LOADER_MT);
  trl_loader_free(b->ld);                              // joins the workers
  b->ld = NULL;
  return 0;
}

static int l_tostring (lua_State *L) {
  LBox *b = luaL_checkudata(L, 1, LOADER_MT);
  if (b->ld) lua_pushfstring(L, "DataLoader pipeline (%p)", (void *)b->ld);
  else lua_pushliteral(L, "DataLoader pipeline (closed)");
  return 1;
}

/* }================================================================== */

static const luaL_Reg loader_meth[] = {
  { "start", l_start }, { "next", l_next }, { "stop", l_stop }, { "nthreads", l_nthreads },
  { "close", l_gc }, { NULL, NULL } };

static const luaL_Reg loader_meta[] = {
  { "__gc", l_gc }, { "__close", l_gc }, { "__tostring", l_tostring }, { "__index", NULL },
  { NULL, NULL } };

static const luaL_Reg funcs[] = {
  { "seed", m_seed }, { "draw", m_draw }, { "sample_seed", m_sample_seed },
  { "permutation", m_permutation }, { "apply", m_apply }, { "check", m_check },
  { "rrc_box", m_rrc_box }, { "loader", m_loader }, { "imread", m_imread }, { NULL, NULL } };

int luaopen_trl_data (lua_State *L) {
  luaL_newmetatable(L, LOADER_MT);
  luaL_setfuncs(L, loader_meta, 0);
  luaL_newlibtable(L, loader_meth);
  luaL_setfuncs(L, loader_meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
