/*
** l_optim.c: 'trl._optim', the in-place update kernels behind gluon.Trainer.
**   sgd(w, g, mom_or_nil, lr, wd, rescale, momentum, clip)
**   nag(w, g, mom_or_nil, lr, wd, rescale, momentum, clip)
**   adam(w, g, mean, var, lr, wd, rescale, beta1, beta2, eps, clip)
** Every tensor must be contiguous float32 of the same shape as w.
*/
#include "l_util.h"
#include "optim.h"

static float *checkbuf (lua_State *L, int idx, const trl_tensor *w, const char *what) {
  trl_tensor *t = trl_checktensor(L, idx);
  if (t->dtype != TRL_F32 || !trl_is_contiguous(t) || !trl_same_shape(t, w)) {
    char b1[TRL_SHAPELEN], b2[TRL_SHAPELEN];
    luaL_error(L, "optimizer update: %s is %s %s%s, weight is %s float32", what,
               trl_tensor_shape_str(b1, t), trl_dtype_name(t->dtype),
               trl_is_contiguous(t) ? "" : " (not contiguous)", trl_tensor_shape_str(b2, w));
  }
  return trl_f32(t);
}

static trl_tensor *checkweight (lua_State *L) {
  trl_tensor *w = trl_checktensor(L, 1);
  if (w->dtype != TRL_F32 || !trl_is_contiguous(w))
    luaL_error(L, "optimizer update: weight must be contiguous float32, got %s", trl_dtype_name(w->dtype));
  return w;
}

static int o_sgd_like (lua_State *L, int nesterov) {
  trl_tensor *w = checkweight(L);
  float *g = checkbuf(L, 2, w, "gradient");
  float *mom = lua_isnoneornil(L, 3) ? NULL : checkbuf(L, 3, w, "momentum state");
  float lr = (float)luaL_checknumber(L, 4), wd = (float)luaL_checknumber(L, 5);
  float rescale = (float)luaL_checknumber(L, 6), momentum = (float)luaL_optnumber(L, 7, 0);
  float clip = (float)luaL_optnumber(L, 8, -1);
  trl_tensor_touch(w);
  if (mom) trl_tensor_touch(trl_checktensor(L, 3));
  (nesterov ? trl_nag_update : trl_sgd_update)(trl_f32(w), g, mom, trl_numel(w), lr, wd, rescale,
                                               momentum, clip);
  return 0;
}

static int o_sgd (lua_State *L) { return o_sgd_like(L, 0); }
static int o_nag (lua_State *L) { return o_sgd_like(L, 1); }

static int o_adam (lua_State *L) {
  trl_tensor *w = checkweight(L);
  float *g = checkbuf(L, 2, w, "gradient"), *mean = checkbuf(L, 3, w, "adam mean");
  float *var = checkbuf(L, 4, w, "adam var");
  trl_tensor_touch(w);
  trl_tensor_touch(trl_checktensor(L, 3));
  trl_tensor_touch(trl_checktensor(L, 4));
  trl_adam_update(trl_f32(w), g, mean, var, trl_numel(w), (float)luaL_checknumber(L, 5),
                  (float)luaL_checknumber(L, 6), (float)luaL_checknumber(L, 7),
                  (float)luaL_checknumber(L, 8), (float)luaL_checknumber(L, 9),
                  (float)luaL_checknumber(L, 10), (float)luaL_optnumber(L, 11, -1));
  return 0;
}

static const luaL_Reg funcs[] = {
  {"sgd", o_sgd}, {"nag", o_nag}, {"adam", o_adam}, {NULL, NULL}
};

int luaopen_trl_optim (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
