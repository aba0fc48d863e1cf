/*
** l_util.h: what every binding shares: the tensor box, checktensor/pushtensor, and the
** one way to turn a core 'trl_status' into a Lua error. Only bindings/ includes lua.h.
*/
#ifndef TRL_L_UTIL_H
#define TRL_L_UTIL_H

#include <lua.h>
#include <lauxlib.h>

#include "tensor.h"

#define TRL_TENSOR_MT "trl.Tensor"

// A Lua tensor: a full userdata holding exactly one ref (NULL once released).
typedef struct TBox { trl_tensor *t; } TBox;

// Push a box with t = NULL and its metatable set, before the tensor exists (Lua's newprefile).
TBox *trl_newbox (lua_State *L);
// The tensor at 'idx'; raises "bad argument" or "use of released tensor".
trl_tensor *trl_checktensor (lua_State *L, int idx);
// The tensor at 'idx', or NULL if it is not a live tensor.
trl_tensor *trl_totensor (lua_State *L, int idx);
// Push 't' in a new box, stealing the caller's ref.
void trl_pushtensor (lua_State *L, trl_tensor *t);
// On failure raise the core message (format "%s"); returns 0 otherwise.
int trl_check (lua_State *L, trl_status st);
// For outside-world failures: push nil, message; returns 2.
int trl_pushfail (lua_State *L);
// A shape from a Lua table {2,3} or from integer arguments starting at 'idx'.
int trl_checkshape (lua_State *L, int idx, int64_t *shape);
// Convert a 1-based (or negative) Lua dim to 0-based; raises naming 'op' when out of range.
int trl_checkdim (lua_State *L, int idx, int ndim, const char *op);
// Preload every C module of modules.def (called by the trl executable after luaL_openlibs).
void trl_openlibs (lua_State *L);

#endif
