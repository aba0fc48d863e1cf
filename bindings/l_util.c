/*
** l_util.c: the tensor box shared by every binding, status-to-error conversion, shape and
** dim arguments, and 'trl_openlibs', which preloads every C module of modules.def.
*/
#include <stdlib.h>

#include "l_util.h"
#include "mem.h"
#include "ops.h"

TBox *trl_newbox (lua_State *L) {
  TBox *b = (TBox *)lua_newuserdatauv(L, sizeof(TBox), 0);
  b->t = NULL;  // mark it released before anything can fail
  luaL_setmetatable(L, TRL_TENSOR_MT);
  return b;
}

trl_tensor *trl_totensor (lua_State *L, int idx) {
  TBox *b = (TBox *)luaL_testudata(L, idx, TRL_TENSOR_MT);
  return b ? b->t : NULL;
}

trl_tensor *trl_checktensor (lua_State *L, int idx) {
  TBox *b = (TBox *)luaL_checkudata(L, idx, TRL_TENSOR_MT);
  if (b->t == NULL) luaL_argerror(L, idx, "use of released tensor");
  return b->t;
}

// Only a memory error can raise in here; then the ref leaks. Callers that can afford it use
// trl_newbox first and fill box->t (STYLE: box first).
void trl_pushtensor (lua_State *L, trl_tensor *t) {
  TBox *b = trl_newbox(L);
  b->t = t;
}

int trl_check (lua_State *L, trl_status st) {
  if (st != TRL_OK) return luaL_error(L, "%s", trl_errmsg());
  return 0;
}

int trl_pushfail (lua_State *L) {
  lua_pushnil(L);
  lua_pushstring(L, trl_errmsg());
  return 2;
}

int trl_checkshape (lua_State *L, int idx, int64_t *shape) {
  int n = 0;
  if (lua_istable(L, idx)) {
    n = (int)luaL_len(L, idx);
    luaL_argcheck(L, n <= TRL_MAXDIM, idx, "too many dims");
    for (int i = 0; i < n; i++) {
      lua_geti(L, idx, i + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok) luaL_argerror(L, idx, "shape entries must be integers");
      shape[i] = v;
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    for (int i = idx; i <= top && lua_isinteger(L, i); i++) {
      luaL_argcheck(L, n < TRL_MAXDIM, i, "too many dims");
      shape[n++] = lua_tointeger(L, i);
    }
    if (n == 0) luaL_typeerror(L, idx, "shape table");
  }
  return n;
}

int trl_checkdim (lua_State *L, int idx, int ndim, const char *op) {
  lua_Integer d = luaL_checkinteger(L, idx);
  lua_Integer z = d > 0 ? d - 1 : d + ndim;  // 1-based; -1 is the last dim
  if (d == 0 || z < 0 || z >= ndim)
    luaL_error(L, "%s: dim %d out of range for a %d-dim tensor (dims are 1..%d or -1..-%d)",
               op, (int)d, ndim, ndim, ndim);
  return (int)z;
}

/* {==================================================================
** Module registration
** =================================================================== */

#define M(name) int luaopen_trl_##name (lua_State *L);
#include "modules.def"
#undef M

static const luaL_Reg preloads[] = {
#define M(name) {"trl._" #name, luaopen_trl_##name},
#include "modules.def"
#undef M
  {NULL, NULL}
};

static void gc_hook (void *ud) {
  lua_gc((lua_State *)ud, LUA_GCCOLLECT);
}

static int stress;  // TRL_GCSTRESS=1: a full GC at every tensor allocation (see mem.c)

static void gc_step (void *ud, size_t kb) {
  if (stress) lua_gc((lua_State *)ud, LUA_GCCOLLECT);
  else lua_gc((lua_State *)ud, LUA_GCSTEP, (int)(kb > 1 << 20 ? 1 << 20 : kb));
}

void trl_openlibs (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *r = preloads; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pop(L, 1);
  // the tensor metatable must exist before any module pushes a tensor
  luaL_requiref(L, "trl._tensor", luaopen_trl_tensor, 0);
  lua_pop(L, 1);
  // Lua cannot see tensor memory: large allocations advance its GC, and a full GC runs when
  // tensor memory passes 1 GiB (then twice what survived)
  const char *gs = getenv("TRL_GCSTRESS");
  stress = gs != NULL && gs[0] == '1';
  const char *lim = getenv("TRL_GC_SOFT_LIMIT_MB");
  size_t mb = lim ? (size_t)strtoull(lim, NULL, 10) : 1024;
  trl_mem_set_hook(gc_hook, gc_step, L, mb << 20);
  const char *nt = getenv("TRL_NUM_THREADS");
  if (nt && atoi(nt) > 0) trl_set_num_threads(atoi(nt));
}

/* }================================================================== */
