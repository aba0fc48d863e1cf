/*
** l_nn.c: the 'trl._nn' module: the neural-network ops of core/nn.h for Lua (conv2d,
** pooling, batch_norm, the inference-only conv2d_bn_act, bn_act and bottleneck, softmax,
** log_softmax, softmax_xent, dropout). Options come in a table;
** a pair option ({h,w}) also takes one number for both. Dims are 1-based, negatives count from
** the end. The layers of trl.gluon.nn are built on these; this module keeps no state.
*/
#include <math.h>

#include "l_util.h"
#include "nn.h"
#include "tape.h"

/* {==================================================================
** Options
** =================================================================== */

// The option 'k' of the table at 'idx' (nil when absent or when there is no table) on top.
static int optfield (lua_State *L, int idx, const char *k) {
  if (lua_isnoneornil(L, idx)) { lua_pushnil(L); return LUA_TNIL; }
  luaL_checktype(L, idx, LUA_TTABLE);
  return lua_getfield(L, idx, k);
}

// A positive-or-zero pair option: nil keeps 'v', a number sets both, {h, w} sets each.
static void optpair (lua_State *L, int idx, const char *op, const char *k, int *v, int min) {
  int t = optfield(L, idx, k);
  if (t == LUA_TNUMBER) {
    v[0] = v[1] = (int)luaL_checkinteger(L, -1);
  } else if (t == LUA_TTABLE) {
    if (luaL_len(L, -1) != 2) luaL_error(L, "%s: option '%s' must be a number or {h, w}", op, k);
    for (int i = 0; i < 2; i++) {
      lua_geti(L, -1, i + 1);
      if (!lua_isinteger(L, -1)) luaL_error(L, "%s: option '%s' must hold integers", op, k);
      v[i] = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "%s: option '%s' must be a number or {h, w}, got %s", op, k,
               luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  if (v[0] < min || v[1] < min)
    luaL_error(L, "%s: option '%s' is {%d, %d}, each must be at least %d", op, k, v[0], v[1], min);
}

static int optint (lua_State *L, int idx, const char *op, const char *k, int def) {
  int t = optfield(L, idx, k);
  if (t != LUA_TNIL && !lua_isinteger(L, -1))
    luaL_error(L, "%s: option '%s' must be an integer, got %s", op, k, luaL_typename(L, -1));
  int v = t == LUA_TNIL ? def : (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static double optnum (lua_State *L, int idx, const char *op, const char *k, double def) {
  int t = optfield(L, idx, k);
  if (t != LUA_TNIL && t != LUA_TNUMBER)
    luaL_error(L, "%s: option '%s' must be a number, got %s", op, k, luaL_typename(L, -1));
  double v = t == LUA_TNIL ? def : lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int optbool (lua_State *L, int idx, const char *k, int def) {
  int t = optfield(L, idx, k);
  int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

// A tensor argument that may be nil.
static trl_tensor *opttensor (lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : trl_checktensor(L, idx);
}

/* }================================================================== */

/* {==================================================================
** Ops
** =================================================================== */

// conv2d(x, w, b_or_nil, {stride=, pad=, dilation=, groups=})
static int m_conv2d (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1), *w = trl_checktensor(L, 2), *b = opttensor(L, 3);
  trl_conv_params p = trl_conv_defaults();
  optpair(L, 4, "conv2d", "stride", p.stride, 1);
  optpair(L, 4, "conv2d", "pad", p.pad, 0);
  optpair(L, 4, "conv2d", "dilation", p.dilation, 1);
  p.groups = optint(L, 4, "conv2d", "groups", 1);
  if (p.groups < 1) luaL_error(L, "conv2d: option 'groups' is %d, must be at least 1", p.groups);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_conv2d(&r->t, x, w, b, &p));
  return 1;
}

// Pool options: kernel (required), stride (default: kernel), pad, ceil_mode, count_include_pad.
static trl_pool_params checkpool (lua_State *L, const char *op) {
  int k[2] = {0, 0};
  optpair(L, 2, op, "kernel", k, 0);
  if (k[0] < 1 || k[1] < 1)
    luaL_error(L, "%s: option 'kernel' (a number or {h, w}) is required", op);
  trl_pool_params p = trl_pool_defaults(k[0]);
  p.kernel[0] = p.stride[0] = k[0];
  p.kernel[1] = p.stride[1] = k[1];
  optpair(L, 2, op, "stride", p.stride, 1);
  optpair(L, 2, op, "pad", p.pad, 0);
  p.ceil_mode = optbool(L, 2, "ceil_mode", 0);
  p.count_include_pad = optbool(L, 2, "count_include_pad", 1);
  return p;
}

// max_pool2d(x, {kernel=, stride=kernel, pad=0, ceil_mode=false})
static int m_max_pool2d (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1);
  trl_pool_params p = checkpool(L, "max_pool2d");
  TBox *r = trl_newbox(L);
  trl_check(L, trl_maxpool2d(&r->t, x, &p));
  return 1;
}

// avg_pool2d(x, {kernel=, stride=kernel, pad=0, ceil_mode=false, count_include_pad=true})
static int m_avg_pool2d (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1);
  trl_pool_params p = checkpool(L, "avg_pool2d");
  TBox *r = trl_newbox(L);
  trl_check(L, trl_avgpool2d(&r->t, x, &p));
  return 1;
}

static int m_global_avg_pool2d (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_global_avgpool2d(&r->t, x));
  return 1;
}

// batch_norm(x, gamma_or_nil, beta_or_nil, running_mean, running_var,
//            {eps=1e-5, momentum=0.9, training=<autograd mode>, use_global_stats=false,
//             lo=-inf, hi=inf (a clamp fused after it: ReLU lo=0, ReLU6 lo=0 hi=6)})
static int m_batch_norm (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1), *gamma = opttensor(L, 2), *beta = opttensor(L, 3);
  trl_tensor *rm = trl_checktensor(L, 4), *rv = trl_checktensor(L, 5);
  trl_bn_params p = trl_bn_defaults();
  p.eps = (float)optnum(L, 6, "batch_norm", "eps", p.eps);
  p.momentum = (float)optnum(L, 6, "batch_norm", "momentum", p.momentum);
  p.training = optbool(L, 6, "training", p.training);
  p.use_global_stats = optbool(L, 6, "use_global_stats", p.use_global_stats);
  p.lo = (float)optnum(L, 6, "batch_norm", "lo", -HUGE_VAL);   // a fused clamp (ReLU: lo = 0)
  p.hi = (float)optnum(L, 6, "batch_norm", "hi", HUGE_VAL);
  p.clamp = p.lo != -HUGE_VAL || p.hi != HUGE_VAL;
  TBox *r = trl_newbox(L);
  trl_check(L, trl_batchnorm(&r->t, x, gamma, beta, rm, rv, &p));
  return 1;
}

// The predict-mode BatchNorm table at 'idx' ({gamma=, beta=, mean=, var=, eps=}): its
// tensors are read raw, so the table (an argument) keeps them alive during the call.
static void checkbn (lua_State *L, int idx, const char *op, trl_bn_ref *bn) {
  luaL_checktype(L, idx, LUA_TTABLE);
  const char *keys[4] = { "gamma", "beta", "mean", "var" };
  trl_tensor **dst[4] = { &bn->gamma, &bn->beta, &bn->mean, &bn->var };
  for (int k = 0; k < 4; k++) {
    lua_pushstring(L, keys[k]);
    lua_rawget(L, idx);
    *dst[k] = lua_isnil(L, -1) ? NULL : trl_checktensor(L, -1);
    lua_pop(L, 1);
  }
  if (!bn->mean || !bn->var) luaL_error(L, "%s: the BatchNorm table needs 'mean' and 'var'", op);
  lua_pushstring(L, "eps");
  lua_rawget(L, idx);
  bn->eps = lua_isnil(L, -1) ? 1e-5f : (float)luaL_checknumber(L, -1);
  lua_pop(L, 1);
}

/* {==================================================================
** Conv packs: conv_pack() -> a pack (core/nn.h) for conv2d_bn_act's and bottleneck's 'pack'
** option; pack:bytes(), pack:builds(), pack:clear(). Freed by the collector.
** =================================================================== */

#define PACK_MT "trl.conv_pack"

static trl_conv_pack **checkpack (lua_State *L, int idx) {
  return (trl_conv_pack **)luaL_checkudata(L, idx, PACK_MT);
}

// The 'pack' option of the table at 'idx', or NULL.
static trl_conv_pack *optpack (lua_State *L, int idx, const char *op) {
  trl_conv_pack *p = NULL;
  if (optfield(L, idx, "pack") != LUA_TNIL) {
    trl_conv_pack **u = luaL_testudata(L, -1, PACK_MT);
    if (!u) luaL_error(L, "%s: option 'pack' must be a conv pack (trl._nn.conv_pack()), got %s",
                       op, luaL_typename(L, -1));
    p = *u;
  }
  lua_pop(L, 1);
  return p;
}

static int m_conv_pack (lua_State *L) {
  trl_conv_pack **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, PACK_MT);
  if (!(*u = trl_conv_pack_new())) luaL_error(L, "conv_pack: out of memory");
  return 1;
}

static int pack_gc (lua_State *L) {
  trl_conv_pack **u = checkpack(L, 1);
  trl_conv_pack_free(*u);
  *u = NULL;
  return 0;
}

static int pack_clear (lua_State *L) {
  trl_conv_pack_clear(*checkpack(L, 1));
  return 0;
}

static int pack_bytes (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_conv_pack_bytes(*checkpack(L, 1)));
  return 1;
}

static int pack_builds (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)trl_conv_pack_builds(*checkpack(L, 1)));
  return 1;
}

static int pack_tostring (lua_State *L) {
  trl_conv_pack *p = *checkpack(L, 1);
  lua_pushfstring(L, "conv_pack: %I bytes, %I builds", (lua_Integer)trl_conv_pack_bytes(p),
                  (lua_Integer)trl_conv_pack_builds(p));
  return 1;
}

/* }================================================================== */

// conv2d_bn_act(x, w, b_or_nil, bn_or_nil, {stride=, pad=, dilation=, groups=, lo=, hi=,
// pack=}): inference only; bn = {gamma=, beta=, mean=, var=, eps=1e-5}; the output is clamped
// to [lo, hi] (defaults -inf, inf; ReLU: lo = 0); 'pack' keeps w's packed form (conv_pack).
static int m_conv2d_bn_act (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1), *w = trl_checktensor(L, 2), *b = opttensor(L, 3);
  trl_bn_ref bn = { 0 };
  int has_bn = !lua_isnoneornil(L, 4);
  if (has_bn) checkbn(L, 4, "conv2d_bn_act", &bn);
  trl_conv_params p = trl_conv_defaults();
  optpair(L, 5, "conv2d_bn_act", "stride", p.stride, 1);
  optpair(L, 5, "conv2d_bn_act", "pad", p.pad, 0);
  optpair(L, 5, "conv2d_bn_act", "dilation", p.dilation, 1);
  p.groups = optint(L, 5, "conv2d_bn_act", "groups", 1);
  if (p.groups < 1)
    luaL_error(L, "conv2d_bn_act: option 'groups' is %d, must be at least 1", p.groups);
  float lo = (float)optnum(L, 5, "conv2d_bn_act", "lo", -HUGE_VAL);
  float hi = (float)optnum(L, 5, "conv2d_bn_act", "hi", HUGE_VAL);
  trl_conv_pack *pack = optpack(L, 5, "conv2d_bn_act");
  TBox *r = trl_newbox(L);
  trl_check(L, trl_conv2d_bn_act(&r->t, x, w, b, has_bn ? &bn : NULL, lo, hi, &p, pack));
  return 1;
}

// bn_act(x, bn, {lo=, hi=}): predict-mode batch_norm then the clamp, in one pass.
static int m_bn_act (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1);
  trl_bn_ref bn = { 0 };
  checkbn(L, 2, "bn_act", &bn);
  float lo = (float)optnum(L, 3, "bn_act", "lo", -HUGE_VAL);
  float hi = (float)optnum(L, 3, "bn_act", "hi", HUGE_VAL);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_bn_act(&r->t, x, &bn, lo, hi));
  return 1;
}

// bottleneck(x, {expand, depthwise, project}, {stride=1, residual=false}): each stage a table
// {w=, b=nil, bn=nil (as conv2d_bn_act's), lo=-inf, hi=inf, pack=nil (the 1x1 stages use
// it)}; inference only (trl_bottleneck).
// The stage tables stay on the stack, so their tensors live through the call.
static int m_bottleneck (lua_State *L) {
  static const char *names[3] = { "expand", "depthwise", "project" };
  trl_tensor *x = trl_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  trl_bneck_stage st[3];
  trl_bn_ref bn[3];
  for (int i = 0; i < 3; i++) {
    if (lua_geti(L, 2, i + 1) != LUA_TTABLE)
      luaL_error(L, "bottleneck: stage %d (%s) must be a table, got %s", i + 1, names[i],
                 luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_getfield(L, t, "w");
    st[i].w = trl_checktensor(L, -1);
    lua_getfield(L, t, "b");
    st[i].b = lua_isnil(L, -1) ? NULL : trl_checktensor(L, -1);
    st[i].bn = NULL;
    if (lua_getfield(L, t, "bn") != LUA_TNIL) {
      checkbn(L, lua_gettop(L), "bottleneck", &bn[i]);
      st[i].bn = &bn[i];
    }
    st[i].lo = (float)optnum(L, t, "bottleneck", "lo", -HUGE_VAL);
    st[i].hi = (float)optnum(L, t, "bottleneck", "hi", HUGE_VAL);
    st[i].pack = optpack(L, t, "bottleneck");
  }
  int stride = optint(L, 3, "bottleneck", "stride", 1);
  int residual = optbool(L, 3, "residual", 0);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_bottleneck(&r->t, x, st, stride, residual));
  return 1;
}

static int softmax_like (lua_State *L, int logp) {
  trl_tensor *x = trl_checktensor(L, 1);
  const char *op = logp ? "log_softmax" : "softmax";
  int dim = lua_isnoneornil(L, 2) ? x->ndim - 1 : trl_checkdim(L, 2, x->ndim, op);
  TBox *r = trl_newbox(L);
  trl_check(L, logp ? trl_log_softmax(&r->t, x, dim) : trl_softmax(&r->t, x, dim));
  return 1;
}

// softmax(x, dim=-1), log_softmax(x, dim=-1)
static int m_softmax (lua_State *L) { return softmax_like(L, 0); }
static int m_log_softmax (lua_State *L) { return softmax_like(L, 1); }

// softmax_xent(logits (N,K), labels (N) int64 0-based) -> (N) per-sample loss
static int m_softmax_xent (lua_State *L) {
  trl_tensor *logits = trl_checktensor(L, 1), *labels = trl_checktensor(L, 2);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_softmax_xent(&r->t, logits, labels));
  return 1;
}

// dropout(x, p, training=<autograd mode>)
static int m_dropout (lua_State *L) {
  trl_tensor *x = trl_checktensor(L, 1);
  double p = luaL_checknumber(L, 2);
  luaL_argcheck(L, p >= 0 && p < 1, 2, "dropout: rate must be in [0, 1)");
  int training = lua_isnoneornil(L, 3) ? trl_tape_is_training() : lua_toboolean(L, 3);
  TBox *r = trl_newbox(L);
  trl_check(L, trl_dropout(&r->t, x, p, training, NULL));
  return 1;
}

/* }================================================================== */

static const luaL_Reg funcs[] = {
  {"conv2d", m_conv2d}, {"max_pool2d", m_max_pool2d}, {"avg_pool2d", m_avg_pool2d},
  {"global_avg_pool2d", m_global_avg_pool2d}, {"batch_norm", m_batch_norm},
  {"conv2d_bn_act", m_conv2d_bn_act}, {"bn_act", m_bn_act}, {"bottleneck", m_bottleneck},
  {"softmax", m_softmax}, {"log_softmax", m_log_softmax}, {"softmax_xent", m_softmax_xent},
  {"dropout", m_dropout}, {"conv_pack", m_conv_pack},
  {NULL, NULL}
};

static const luaL_Reg pack_methods[] = {
  {"clear", pack_clear}, {"bytes", pack_bytes}, {"builds", pack_builds}, {NULL, NULL}
};

int luaopen_trl_nn (lua_State *L) {
  luaL_newmetatable(L, PACK_MT);
  lua_pushcfunction(L, pack_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, pack_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, pack_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
