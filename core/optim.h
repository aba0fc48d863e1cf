/*
** optim.h: the update kernels of trl's optimizers, with Gluon 1.x semantics
** (python/mxnet/optimizer/optimizer.py and src/operator/optimizer_op-inl.h). Each works in
** place on raw float32 buffers of 'n' elements; the Lua Trainer picks lr, wd and rescale.
** 'clip' <= 0 means no gradient clipping.
*/
#ifndef TRL_OPTIM_H
#define TRL_OPTIM_H

#include <stdint.h>

// g' = clip(rescale*g) + wd*w.  momentum == 0: w -= lr*g'.
// momentum > 0: mom = momentum*mom - lr*g'; w += mom.
void trl_sgd_update (float *w, const float *g, float *mom, int64_t n,
                     float lr, float wd, float rescale, float momentum, float clip);

// Nesterov: g' = clip(rescale*g) + wd*w; mom = momentum*mom + g'; w -= lr*(g' + momentum*mom).
void trl_nag_update (float *w, const float *g, float *mom, int64_t n,
                     float lr, float wd, float rescale, float momentum, float clip);

// Adam: g' = clip(rescale*g) + wd*w; mean = b1*mean + (1-b1)*g'; var = b2*var + (1-b2)*g'^2;
// w -= lr * mean / (sqrt(var) + eps). The caller folds the bias correction into lr.
void trl_adam_update (float *w, const float *g, float *mean, float *var, int64_t n,
                      float lr, float wd, float rescale, float beta1, float beta2, float eps,
                      float clip);

#endif
