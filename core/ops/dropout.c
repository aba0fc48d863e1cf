/*
** dropout.c: inverted dropout. In training each element is kept with probability 1-p and
** scaled by 1/(1-p); the keep mask (u8) is saved for backward. In inference it is the
** identity. Draws come from a seedable trl_rng, so a seed reproduces the mask.
*/
#include <string.h>

#include "nn.h"
#include "tape.h"

/* {==================================================================
** Kernels
** =================================================================== */

// out/inp/mask are (n).
void dropout_forward (float *out, uint8_t *mask, const float *inp, int64_t n, double p,
                      trl_rng *rng) {
  // Keep when a 32-bit draw is >= p * 2^32; each 64-bit draw serves two elements.
  uint64_t thr = p >= 1 ? UINT64_C(1) << 32 : (uint64_t)(p * 4294967296.0);
  float scale = p >= 1 ? 0.0f : (float)(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; i += 2) {
    uint64_t r = trl_rng_next(rng);
    mask[i] = (r & 0xffffffffu) >= thr;
    if (i + 1 < n) mask[i + 1] = (r >> 32) >= thr;
  }
  for (int64_t i = 0; i < n; i++) out[i] = mask[i] ? inp[i] * scale : 0.0f;
}

// dinp/dout/mask are (n); scale is 1/(1-p).
void dropout_backward (float *dinp, const float *dout, const uint8_t *mask, int64_t n,
                       float scale) {
  for (int64_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
}

/* }================================================================== */

/* {==================================================================
** Builder and tape node
** =================================================================== */

// saved[0] is the u8 mask; the payload is the scale 1/(1-p).
static trl_status dropout_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  if (!gin[0]) return TRL_OK;
  float scale;
  memcpy(&scale, node->payload, sizeof scale);
  trl_tensor *gc = NULL;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  dropout_backward(trl_f32(gin[0]), trl_f32(gc ? gc : gout),
                   (const uint8_t *)trl_data(node->saved[0]), trl_numel(gin[0]), scale);
  trl_tensor_release(gc);
  return TRL_OK;
}

trl_status trl_dropout (trl_tensor **out, trl_tensor *x, double p, int training, trl_rng *rng) {
  if (x->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "dropout: expected a float32 x, got %s", trl_dtype_name(x->dtype));
  if (!(p >= 0 && p <= 1))
    return trl_fail(TRL_EARG, "dropout: p must be in [0, 1], got %g", p);
  if (!training || p == 0) {
    trl_tensor_retain(x);
    *out = x;
    return TRL_OK;
  }
  trl_tensor *xc = NULL, *mask = NULL, *y = NULL;
  trl_status st;
  if ((st = trl_tensor_contiguous(&xc, x)) != TRL_OK) return st;
  if ((st = trl_tensor_empty(&mask, TRL_U8, xc->ndim, xc->shape)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty_like(&y, xc)) != TRL_OK) goto done;
  dropout_forward(trl_f32(y), (uint8_t *)trl_data(mask), trl_f32(xc), trl_numel(xc), p,
                  rng ? rng : trl_rng_default());
  trl_node *node;
  if ((st = trl_tape_record(&node, y, TRL_OP_DROPOUT, dropout_bwd, 1, &x, sizeof(float))) != TRL_OK)
    goto done;
  if (node) {
    float scale = p >= 1 ? 0.0f : (float)(1.0 / (1.0 - p));
    memcpy(node->payload, &scale, sizeof scale);
    trl_node_save(node, 0, mask);
  }
done:
  trl_tensor_release(xc);
  trl_tensor_release(mask);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

/* }================================================================== */
