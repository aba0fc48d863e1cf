/*
** random.c: xoshiro256** generators (seeded through splitmix64) and tensor fills.
** Each thread that draws numbers owns a 'trl_rng'; nothing here is shared.
*/
#include <math.h>

#include "ops.h"

static uint64_t splitmix64 (uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void trl_rng_seed (trl_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl (uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t trl_rng_next (trl_rng *r) {
  uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return res;
}

double trl_rng_uniform01 (trl_rng *r) {
  return (double)(trl_rng_next(r) >> 11) * 0x1.0p-53;
}

double trl_rng_normal01 (trl_rng *r) {  // Box-Muller; one draw per call keeps streams simple
  double u1 = trl_rng_uniform01(r), u2 = trl_rng_uniform01(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

trl_rng *trl_rng_default (void) {
  static trl_rng g;
  static int seeded = 0;
  if (!seeded) { trl_rng_seed(&g, 0x7472l); seeded = 1; }
  return &g;
}

static trl_status check_f32 (const char *op, const trl_tensor *t) {
  if (t->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "%s: expected a float32 tensor, got %s", op, trl_dtype_name(t->dtype));
  return TRL_OK;
}

trl_status trl_random_uniform (trl_tensor *t, trl_rng *r, double lo, double hi) {
  TRL_TRY(check_f32("random.uniform", t));
  if (!(lo <= hi)) return trl_fail(TRL_EARG, "random.uniform: low %g above high %g", lo, hi);
  int64_t n = trl_numel(t);
  trl_tensor_touch(t);
  if (trl_is_contiguous(t)) {   // the same draws in the same order, without trl_set's indexing
    float *d = trl_f32(t);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(lo + (hi - lo) * trl_rng_uniform01(r));
    return TRL_OK;
  }
  for (int64_t i = 0; i < n; i++) trl_set(t, i, lo + (hi - lo) * trl_rng_uniform01(r));
  return TRL_OK;
}

trl_status trl_random_normal (trl_tensor *t, trl_rng *r, double mean, double std) {
  TRL_TRY(check_f32("random.normal", t));
  if (!(std >= 0)) return trl_fail(TRL_EARG, "random.normal: negative scale %g", std);
  int64_t n = trl_numel(t);
  trl_tensor_touch(t);
  if (trl_is_contiguous(t)) {
    float *d = trl_f32(t);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(mean + std * trl_rng_normal01(r));
    return TRL_OK;
  }
  for (int64_t i = 0; i < n; i++) trl_set(t, i, mean + std * trl_rng_normal01(r));
  return TRL_OK;
}
