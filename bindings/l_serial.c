/*
** l_serial.c: module 'trl._serial', weight files from Lua. 'load' picks the format from the
** file's first bytes (MXNet .params, safetensors, PyTorch .pth zip); load_params,
** load_safetensors and load_pth force one; save_params and save_safetensors write atomically.
** Files that are missing or malformed give nil, msg; bad arguments raise.
*/
#include <string.h>

#include "l_util.h"
#include "ndlist.h"
#include "pth.h"
#include "safetensors.h"

#define LIST_MT "trl.serial.List"

/* {==================================================================
** Loading
** =================================================================== */

// A loaded list lives in a userdata until its tensors are boxed: nothing leaks if Lua raises.
static int list_gc (lua_State *L) {
  trl_ndlist_free((trl_ndlist *)luaL_checkudata(L, 1, LIST_MT));
  return 0;
}

// Push tensors (name -> tensor, or an array for an unnamed list), the names in file order
// and the safetensors metadata (or nil), moving every ref into a box.
static int pushlist (lua_State *L, trl_ndlist *l) {
  int named = l->names != NULL;
  lua_createtable(L, named ? 0 : l->n, named ? l->n : 0);
  int tensors = lua_gettop(L);
  lua_createtable(L, named ? l->n : 0, 0);
  int names = lua_gettop(L);
  for (int i = 0; i < l->n; i++) {
    TBox *b = trl_newbox(L);
    b->t = l->arrays[i];
    l->arrays[i] = NULL;
    if (named) {
      lua_setfield(L, tensors, l->names[i]);
      lua_pushstring(L, l->names[i]);
      lua_rawseti(L, names, i + 1);
    } else {
      lua_rawseti(L, tensors, i + 1);
    }
  }
  if (l->n_meta == 0) {
    lua_pushnil(L);
  } else {
    lua_createtable(L, 0, l->n_meta);
    for (int i = 0; i < l->n_meta; i++) {
      lua_pushstring(L, l->meta_vals[i]);
      lua_setfield(L, -2, l->meta_keys[i]);
    }
  }
  return 3;
}

static int load_with (lua_State *L, trl_status (*load)(trl_ndlist *, const char *)) {
  const char *path = luaL_checkstring(L, 1);
  trl_ndlist *l = (trl_ndlist *)lua_newuserdatauv(L, sizeof *l, 0);
  memset(l, 0, sizeof *l);
  luaL_setmetatable(L, LIST_MT);
  if (load(l, path) != TRL_OK) return trl_pushfail(L);
  return pushlist(L, l);
}

static int m_load (lua_State *L) { return load_with(L, trl_weights_load); }
static int m_load_params (lua_State *L) { return load_with(L, trl_ndlist_load); }
static int m_load_safetensors (lua_State *L) { return load_with(L, trl_safetensors_load); }
static int m_load_pth (lua_State *L) { return load_with(L, trl_pth_load); }

/* }================================================================== */

/* {==================================================================
** Saving
** =================================================================== */

// The tensors array at 'ti' and the names array at 'ni' (nil allowed when 'optnames') as C
// arrays in userdata on the stack; the strings stay anchored by the caller's tables.
static int checkitems (lua_State *L, int ni, int ti, int optnames, const char ***names,
                       trl_tensor ***ts) {
  luaL_checktype(L, ti, LUA_TTABLE);
  int n = (int)lua_rawlen(L, ti);  // raw access: the tables anchor what we point at
  *ts = (trl_tensor **)lua_newuserdatauv(L, sizeof **ts * (size_t)(n + 1), 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, ti, i + 1);
    (*ts)[i] = trl_totensor(L, -1);
    if ((*ts)[i] == NULL)
      luaL_argerror(L, ti, lua_pushfstring(L, "tensors[%d] is not a live tensor", i + 1));
    lua_pop(L, 1);
  }
  *names = NULL;
  if (optnames && lua_isnoneornil(L, ni)) return n;
  luaL_checktype(L, ni, LUA_TTABLE);
  if ((int)lua_rawlen(L, ni) != n)
    luaL_argerror(L, ni, lua_pushfstring(L, "%d names for %d tensors", (int)lua_rawlen(L, ni), n));
  *names = (const char **)lua_newuserdatauv(L, sizeof **names * (size_t)(n + 1), 0);
  for (int i = 0; i < n; i++) {
    size_t len;
    if (lua_rawgeti(L, ni, i + 1) != LUA_TSTRING)
      luaL_argerror(L, ni, lua_pushfstring(L, "names[%d] is not a string", i + 1));
    (*names)[i] = lua_tolstring(L, -1, &len);
    if (strlen((*names)[i]) != len)
      luaL_argerror(L, ni, lua_pushfstring(L, "names[%d] contains a NUL byte", i + 1));
    lua_pop(L, 1);
  }
  return n;
}

// true, or nil, msg when the file system failed; argument problems raise.
static int saved (lua_State *L, trl_status st) {
  if (st == TRL_EIO) return trl_pushfail(L);
  trl_check(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

// save_params(path, names_or_nil, tensors)
static int m_save_params (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 3);                            // scratch userdata goes above the arguments
  const char **names;
  trl_tensor **ts;
  int n = checkitems(L, 2, 3, 1, &names, &ts);
  return saved(L, trl_ndlist_save(path, n, names, ts));
}

// save_safetensors(path, names, tensors, metadata_or_nil)
static int m_save_safetensors (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 4);
  const char **names;
  trl_tensor **ts;
  int n = checkitems(L, 2, 3, 0, &names, &ts);
  int nm = 0;
  const char **keys = NULL, **vals = NULL;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) nm++;
    keys = (const char **)lua_newuserdatauv(L, sizeof *keys * (size_t)(nm + 1), 0);
    vals = (const char **)lua_newuserdatauv(L, sizeof *vals * (size_t)(nm + 1), 0);
    int i = 0;
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 4, "metadata keys and values must be strings");
      keys[i] = lua_tostring(L, -2);           // anchored by the metadata table
      vals[i++] = lua_tostring(L, -1);
    }
  }
  return saved(L, trl_safetensors_save(path, n, names, ts, nm, keys, vals));
}

/* }================================================================== */

static const luaL_Reg funcs[] = {
  {"load", m_load},
  {"load_params", m_load_params},
  {"load_safetensors", m_load_safetensors},
  {"load_pth", m_load_pth},
  {"save_params", m_save_params},
  {"save_safetensors", m_save_safetensors},
  {NULL, NULL}
};

int luaopen_trl_serial (lua_State *L) {
  if (luaL_newmetatable(L, LIST_MT)) {
    lua_pushcfunction(L, list_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
