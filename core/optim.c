/*
** optim.c: fused optimizer updates (see optim.h). One pass over each parameter, split
** across threads for large tensors.
*/
#include <math.h>

#include "optim.h"

#define PAR_MIN 65536

static inline float clipped (float g, float clip) {
  if (clip > 0) g = g > clip ? clip : (g < -clip ? -clip : g);
  return g;
}

// 'simd': GCC's -O2 left these loops scalar (the clip test), 8x below memory speed on a
// ResNet-18's 11M weights. The vector lanes do the same operations in the same order.
void trl_sgd_update (float *w, const float *g, float *mom, int64_t n,
                     float lr, float wd, float rescale, float momentum, float clip) {
  if (mom && momentum != 0) {
    #pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      float d = clipped(rescale * g[i], clip) + wd * w[i];
      mom[i] = momentum * mom[i] - lr * d;
      w[i] += mom[i];
    }
  } else {
    #pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      w[i] -= lr * (clipped(rescale * g[i], clip) + wd * w[i]);
  }
}

void trl_nag_update (float *w, const float *g, float *mom, int64_t n,
                     float lr, float wd, float rescale, float momentum, float clip) {
  #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float d = clipped(rescale * g[i], clip) + wd * w[i];
    if (mom && momentum != 0) {
      mom[i] = momentum * mom[i] + d;
      d += momentum * mom[i];
    }
    w[i] -= lr * d;
  }
}

void trl_adam_update (float *w, const float *g, float *mean, float *var, int64_t n,
                      float lr, float wd, float rescale, float beta1, float beta2, float eps,
                      float clip) {
  #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float d = clipped(rescale * g[i], clip) + wd * w[i];
    mean[i] = beta1 * mean[i] + (1 - beta1) * d;
    var[i] = beta2 * var[i] + (1 - beta2) * d * d;
    w[i] -= lr * mean[i] / (sqrtf(var[i]) + eps);
  }
}
