/*
** l_image.c: module 'trl._image': JPEG/PNG decode and encode (core/image.c) for Lua.
** read/decode return a uint8 (H,W,C) tensor, or nil and a message when the file is missing
** or damaged (like io.open); bad arguments raise. encode returns the file's bytes as a string.
*/
#include <stdlib.h>

#include "image.h"
#include "l_util.h"

#define ENCBUF_MT "trl.image.EncodedBuffer"

// A core failure: outside-world ones (missing or damaged file) become nil, msg; others raise.
static int result (lua_State *L, trl_status st) {
  if (st == TRL_OK) return 1;
  if (st == TRL_EIO || st == TRL_EFORMAT) return trl_pushfail(L);
  return trl_check(L, st);
}

static int checkflag (lua_State *L, int idx) {
  lua_Integer flag = luaL_optinteger(L, idx, TRL_IMREAD_COLOR);
  luaL_argcheck(L, flag == TRL_IMREAD_GRAY || flag == TRL_IMREAD_COLOR, idx,
                "flag must be 0 (grayscale) or 1 (color)");
  return (int)flag;
}

static int checksize (lua_State *L, int idx) {
  lua_Integer v = luaL_optinteger(L, idx, 0);
  luaL_argcheck(L, v >= 0 && v <= 1 << 20, idx, "minimum size must be 0..1048576");
  return (int)v;
}

// decode(bytes [, flag [, name]]) -> tensor | nil, msg
static int m_decode (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int flag = checkflag(L, 2);
  const char *name = luaL_optstring(L, 3, "<buffer>");
  TBox *b = trl_newbox(L);
  return result(L, trl_image_decode(&b->t, s, n, flag, name));
}

// decode_scaled(bytes, flag, min_w, min_h [, name]) -> tensor | nil, msg
static int m_decode_scaled (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int flag = checkflag(L, 2), min_w = checksize(L, 3), min_h = checksize(L, 4);
  const char *name = luaL_optstring(L, 5, "<buffer>");
  TBox *b = trl_newbox(L);
  return result(L, trl_image_decode_scaled(&b->t, s, n, flag, min_w, min_h, name));
}

// read(path [, flag]) -> tensor | nil, msg
static int m_read (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flag = checkflag(L, 2);
  TBox *b = trl_newbox(L);
  return result(L, trl_image_read(&b->t, path, flag));
}

// read_scaled(path, flag, min_w, min_h) -> tensor | nil, msg
static int m_read_scaled (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flag = checkflag(L, 2), min_w = checksize(L, 3), min_h = checksize(L, 4);
  TBox *b = trl_newbox(L);
  return result(L, trl_image_read_scaled(&b->t, path, flag, min_w, min_h));
}

static int encbuf_gc (lua_State *L) {
  unsigned char **p = luaL_checkudata(L, 1, ENCBUF_MT);
  free(*p);
  *p = NULL;
  return 0;
}

// encode(img, 'png' | 'jpeg' | 'jpg' [, quality = 95]) -> string
static int m_encode (lua_State *L) {
  static const char *const fmts[] = {"png", "jpeg", "jpg", NULL};
  trl_tensor *img = trl_checktensor(L, 1);
  int fmt = luaL_checkoption(L, 2, NULL, fmts);
  lua_Integer q = luaL_optinteger(L, 3, 95);
  luaL_argcheck(L, q >= 1 && q <= 100, 3, "quality must be 1..100");
  unsigned char **p = lua_newuserdatauv(L, sizeof *p, 0);   // owns the bytes if we raise
  *p = NULL;
  luaL_setmetatable(L, ENCBUF_MT);
  size_t n = 0;
  trl_check(L, fmt == 0 ? trl_image_encode_png(img, p, &n)
                        : trl_image_encode_jpeg(img, (int)q, p, &n));
  lua_pushlstring(L, (const char *)*p, n);
  free(*p);
  *p = NULL;
  return 1;
}

// write(img, path [, quality]) -> true | nil, msg (format by extension; atomic)
static int m_write (lua_State *L) {
  trl_tensor *img = trl_checktensor(L, 1);
  const char *path = luaL_checkstring(L, 2);
  lua_Integer q = luaL_optinteger(L, 3, 95);
  luaL_argcheck(L, q >= 1 && q <= 100, 3, "quality must be 1..100");
  trl_status st = trl_image_write(img, path, (int)q);
  if (st == TRL_EIO) return trl_pushfail(L);
  trl_check(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"decode", m_decode},
  {"decode_scaled", m_decode_scaled},
  {"read", m_read},
  {"read_scaled", m_read_scaled},
  {"encode", m_encode},
  {"write", m_write},
  {NULL, NULL}
};

int luaopen_trl_tensor (lua_State *L);

int luaopen_trl_image (lua_State *L) {
  luaL_requiref(L, "trl._tensor", luaopen_trl_tensor, 0);   // registers "trl.Tensor"
  lua_pop(L, 1);
  luaL_newmetatable(L, ENCBUF_MT);
  lua_pushcfunction(L, encbuf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
