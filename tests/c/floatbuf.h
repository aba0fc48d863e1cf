/*
** floatbuf.h: random float buffers and a normwise relative difference, shared by the C tests
** that compare fast kernels with their '_ref' versions on raw buffers.
*/
#ifndef TRL_FLOATBUF_H
#define TRL_FLOATBUF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t frand_seed = 0x9e3779b97f4a7c15ull;   // a test may set its own

static float *frand (int64_t n) {   // n floats from U(-1, 1), xorshift64; free() them
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; i < n; i++) {
    frand_seed ^= frand_seed << 13, frand_seed ^= frand_seed >> 7, frand_seed ^= frand_seed << 17;
    p[i] = (float)((double)(frand_seed >> 11) * 0x1.0p-52 - 1);
  }
  return p;
}

static float *fcopy (const float *src, int64_t n) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  memcpy(p, src, sizeof(float) * (size_t)n);
  return p;
}

// max |a - b| / max |b|
static double reldiff (const float *a, const float *b, int64_t n) {
  double d = 0, m = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    m = fmax(m, fabs((double)b[i]));
  }
  return d / m;
}

#endif
