/*
** softmax.c: softmax and log-softmax along any dim (max-subtracted, so exp never overflows)
** and the fused softmax cross-entropy with sparse int64 labels of Gluon's
** SoftmaxCrossEntropyLoss (per-sample loss, from logits). A tensor is viewed as (O,K,I) with
** K the normalized dim; the rows are the OpenMP work items.
*/
#include <math.h>
#include <string.h>

#include "nn.h"
#include "tape.h"

/* {==================================================================
** Kernels
** =================================================================== */

#define CHUNK 64   // columns i of an (O,K,I) block normalized together when I > 1

// out/inp are (O,K,I), normalized along K.
void softmax_forward (float *out, const float *inp, int O, int K, int I, int logp) {
  if (I == 1) {
    #pragma omp parallel for schedule(static) if ((int64_t)O * K > 32768)
    for (int o = 0; o < O; o++) {
      const float *x = inp + (size_t)o * K;
      float *y = out + (size_t)o * K, m = -INFINITY, s = 0;
      for (int k = 0; k < K; k++) m = fmaxf(m, x[k]);
      for (int k = 0; k < K; k++) s += y[k] = expf(x[k] - m);
      if (logp) {   // (x - m) - log s: exact near the maximum even when |m| is large
        float ls = logf(s);
        for (int k = 0; k < K; k++) y[k] = (x[k] - m) - ls;
      } else {
        for (int k = 0; k < K; k++) y[k] /= s;
      }
    }
    return;
  }
  // Columns are strided by I: walk K rows of a CHUNK-wide strip so reads stay contiguous.
  int nchunk = (I + CHUNK - 1) / CHUNK;
  #pragma omp parallel for schedule(static) if ((int64_t)O * K * I > 32768)
  for (int64_t t = 0; t < (int64_t)O * nchunk; t++) {
    int o = (int)(t / nchunk), i0 = (int)(t % nchunk) * CHUNK;
    int w = I - i0 < CHUNK ? I - i0 : CHUNK;
    const float *x = inp + (size_t)o * K * I + i0;
    float *y = out + (size_t)o * K * I + i0, m[CHUNK], s[CHUNK];
    for (int i = 0; i < w; i++) m[i] = -INFINITY, s[i] = 0;
    for (int k = 0; k < K; k++)
      for (int i = 0; i < w; i++) m[i] = fmaxf(m[i], x[(size_t)k * I + i]);
    for (int k = 0; k < K; k++)
      for (int i = 0; i < w; i++) s[i] += y[(size_t)k * I + i] = expf(x[(size_t)k * I + i] - m[i]);
    for (int i = 0; i < w; i++) s[i] = logp ? logf(s[i]) : 1.0f / s[i];
    for (int k = 0; k < K; k++)
      for (int i = 0; i < w; i++) {
        size_t j = (size_t)k * I + i;
        y[j] = logp ? (x[j] - m[i]) - s[i] : y[j] * s[i];
      }
  }
}

// dinp/dout/out are (O,K,I), out the forward's result.
// softmax: dx += y * (dy - sum(dy * y)); log-softmax: dx += dy - exp(y) * sum(dy).
void softmax_backward (float *dinp, const float *dout, const float *out, int O, int K, int I,
                       int logp) {
  int nchunk = (I + CHUNK - 1) / CHUNK;
  #pragma omp parallel for schedule(static) if ((int64_t)O * K * I > 32768)
  for (int64_t t = 0; t < (int64_t)O * nchunk; t++) {
    int o = (int)(t / nchunk), i0 = (int)(t % nchunk) * CHUNK;
    int w = I - i0 < CHUNK ? I - i0 : CHUNK;
    size_t base = (size_t)o * K * I + i0;
    const float *y = out + base, *gy = dout + base;
    float *dx = dinp + base, s[CHUNK];
    for (int i = 0; i < w; i++) s[i] = 0;
    for (int k = 0; k < K; k++)
      for (int i = 0; i < w; i++)
        s[i] += logp ? gy[(size_t)k * I + i] : gy[(size_t)k * I + i] * y[(size_t)k * I + i];
    for (int k = 0; k < K; k++)
      for (int i = 0; i < w; i++) {
        size_t j = (size_t)k * I + i;
        dx[j] += logp ? gy[j] - expf(y[j]) * s[i] : y[j] * (gy[j] - s[i]);
      }
  }
}

// Naive reference: one (o, i) column at a time, in double; out/inp are (O,K,I).
void softmax_forward_ref (float *out, const float *inp, int O, int K, int I, int logp) {
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      const float *x = inp + (size_t)o * K * I + i;
      double m = -INFINITY, s = 0;
      for (int k = 0; k < K; k++) m = fmax(m, x[(size_t)k * I]);
      for (int k = 0; k < K; k++) s += exp(x[(size_t)k * I] - m);
      for (int k = 0; k < K; k++) {
        double v = x[(size_t)k * I] - m;
        out[(size_t)o * K * I + (size_t)k * I + i] = (float)(logp ? v - log(s) : exp(v) / s);
      }
    }
}

// loss is (N), prob/logits are (N,K), labels is (N) with values in [0,K).
void softmax_xent_forward (float *loss, float *prob, const float *logits,
                           const int64_t *labels, int N, int K) {
  #pragma omp parallel for schedule(static) if ((int64_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * K;
    float *p = prob + (size_t)n * K, m = -INFINITY, s = 0;
    for (int k = 0; k < K; k++) m = fmaxf(m, x[k]);
    for (int k = 0; k < K; k++) s += p[k] = expf(x[k] - m);
    for (int k = 0; k < K; k++) p[k] /= s;
    loss[n] = logf(s) - (x[labels[n]] - m);    // logsumexp - x[label]: exact for tiny p[label]
  }
}

// dlogits/prob are (N,K), dloss/labels are (N): dlogits += (prob - onehot) * dloss.
void softmax_xent_backward (float *dlogits, const float *dloss, const float *prob,
                            const int64_t *labels, int N, int K) {
  #pragma omp parallel for schedule(static) if ((int64_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const float *p = prob + (size_t)n * K;
    float *d = dlogits + (size_t)n * K, g = dloss[n];
    for (int k = 0; k < K; k++) d[k] += p[k] * g;
    d[labels[n]] -= g;
  }
}

/* }================================================================== */

/* {==================================================================
** Builders and tape nodes
** =================================================================== */

typedef struct { int O, K, I, logp; } sm_info;

// saved[0] is the output.
static trl_status softmax_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const sm_info *s = (const sm_info *)node->payload;
  if (!gin[0]) return TRL_OK;
  trl_tensor *gc = NULL;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  softmax_backward(trl_f32(gin[0]), trl_f32(gc ? gc : gout), trl_f32(node->saved[0]),
                   s->O, s->K, s->I, s->logp);
  trl_tensor_release(gc);
  return TRL_OK;
}

static trl_status softmax_build (trl_tensor **out, trl_tensor *x, int dim, int logp) {
  const char *op = logp ? "log_softmax" : "softmax";
  char xs[TRL_SHAPELEN];
  if (x->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "%s: expected a float32 x, got %s", op, trl_dtype_name(x->dtype));
  if (x->ndim < 1)
    return trl_fail(TRL_ESHAPE, "%s: expected at least 1 dim, x is %s", op,
                    trl_tensor_shape_str(xs, x));
  TRL_TRY(trl_check_dim(op, &dim, x->ndim));
  int64_t O = 1, I = 1, K = x->shape[dim];
  for (int i = 0; i < dim; i++) O *= x->shape[i];
  for (int i = dim + 1; i < x->ndim; i++) I *= x->shape[i];
  if (O > INT32_MAX || K > INT32_MAX || I > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "%s: sizes too large, x is %s", op, trl_tensor_shape_str(xs, x));
  sm_info info = { (int)O, (int)K, (int)I, logp };
  trl_tensor *xc = NULL, *y = NULL;
  trl_status st;
  if ((st = trl_tensor_contiguous(&xc, x)) != TRL_OK) return st;
  if ((st = trl_tensor_empty_like(&y, xc)) != TRL_OK) goto done;
  if (O * K * I > 0) softmax_forward(trl_f32(y), trl_f32(xc), info.O, info.K, info.I, logp);
  trl_node *node;
  st = trl_tape_record(&node, y, logp ? TRL_OP_LOG_SOFTMAX : TRL_OP_SOFTMAX, softmax_bwd, 1, &x,
                       sizeof info);
  if (st == TRL_OK && node) {
    memcpy(node->payload, &info, sizeof info);
    trl_node_save(node, 0, y);
  }
done:
  trl_tensor_release(xc);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

trl_status trl_softmax (trl_tensor **out, trl_tensor *x, int dim) {
  return softmax_build(out, x, dim, 0);
}

trl_status trl_log_softmax (trl_tensor **out, trl_tensor *x, int dim) {
  return softmax_build(out, x, dim, 1);
}

typedef struct { int N, K; } xent_info;

// saved[0] is the softmax (N,K), saved[1] the contiguous labels.
static trl_status xent_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const xent_info *s = (const xent_info *)node->payload;
  if (!gin[0]) return TRL_OK;
  trl_tensor *gc = NULL;
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  softmax_xent_backward(trl_f32(gin[0]), trl_f32(gc ? gc : gout), trl_f32(node->saved[0]),
                        (const int64_t *)trl_data(node->saved[1]), s->N, s->K);
  trl_tensor_release(gc);
  return TRL_OK;
}

trl_status trl_softmax_xent (trl_tensor **out, trl_tensor *logits, trl_tensor *labels) {
  char ls[TRL_SHAPELEN], ys[TRL_SHAPELEN];
  trl_tensor_shape_str(ls, logits);
  trl_tensor_shape_str(ys, labels);
  if (logits->dtype != TRL_F32 || labels->dtype != TRL_I64)
    return trl_fail(TRL_ETYPE, "softmax_xent: expected float32 logits and int64 labels, got %s "
                    "and %s", trl_dtype_name(logits->dtype), trl_dtype_name(labels->dtype));
  if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0])
    return trl_fail(TRL_ESHAPE, "softmax_xent: expected logits (N,K) and labels (N), logits is %s, "
                    "labels is %s", ls, ys);
  int64_t N = logits->shape[0], K = logits->shape[1];
  if (K < 1 || N > INT32_MAX || K > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "softmax_xent: need 1 <= K (classes), logits is %s", ls);
  trl_tensor *xc = NULL, *yc = NULL, *prob = NULL, *loss = NULL;
  trl_status st;
  if ((st = trl_tensor_contiguous(&yc, labels)) != TRL_OK) return st;
  const int64_t *lab = (const int64_t *)trl_data(yc);
  for (int64_t n = 0; n < N; n++)
    if (lab[n] < 0 || lab[n] >= K) {
      st = trl_fail(TRL_EARG, "softmax_xent: label %lld of sample %lld is out of range [0, %lld) "
                    "(K = %lld classes), logits is %s", (long long)lab[n], (long long)n,
                    (long long)K, (long long)K, ls);
      goto done;
    }
  if ((st = trl_tensor_contiguous(&xc, logits)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty_like(&prob, xc)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty(&loss, TRL_F32, 1, &N)) != TRL_OK) goto done;
  softmax_xent_forward(trl_f32(loss), trl_f32(prob), trl_f32(xc), lab, (int)N, (int)K);
  trl_node *node;
  trl_tensor *in[2] = { logits, labels };
  xent_info info = { (int)N, (int)K };
  st = trl_tape_record(&node, loss, TRL_OP_SOFTMAX_XENT, xent_bwd, 2, in, sizeof info);
  if (st != TRL_OK) goto done;
  if (node) {
    memcpy(node->payload, &info, sizeof info);
    trl_node_save(node, 0, prob);
    trl_node_save(node, 1, yc);
  }
done:
  trl_tensor_release(xc);
  trl_tensor_release(yc);
  trl_tensor_release(prob);
  if (st != TRL_OK) trl_tensor_release(loss);
  else *out = loss;
  return st;
}

/* }================================================================== */
