/*
** batchnorm.c: batch normalization over axis 1 of (N,C,...) float32, as MXNet's BatchNorm:
** training normalizes with the batch mean and biased variance and moves the running stats
** in place; inference (or use_global_stats) uses the running stats. Backward covers both.
** Kernels use AVX2 (x86-64-v3) and OpenMP; plane sums are float, channel totals double.
*/
#include <math.h>
#include <string.h>

#include "mem.h"
#include "nn.h"
#include "tape.h"

trl_bn_params trl_bn_defaults (void) {
  return (trl_bn_params){ .eps = 1e-5f, .momentum = 0.9f, .training = trl_tape_is_training(),
                          .use_global_stats = 0, .clamp = 0, .lo = -INFINITY, .hi = INFINITY };
}

/* {==================================================================
** Kernels
** =================================================================== */

#define BIG(B, C, S) ((int64_t)(B) * (C) * (S) > 32768)

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VEC8 1

// Vector helpers over one (n, c) plane: 8-lane AVX2 with two accumulators, sums returned in
// double (each plane's partial sum is float, the planes add in double).
static double vsum (const float *x, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(a0, a1));
  double s = 0;
  for (int j = 0; j < 8; j++) s += t[j];
  for (; i < n; i++) s += x[i];
  return s;
}

// sum((x - m)^2)
static double vsqdev (const float *x, int n, float m) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), vm = _mm256_set1_ps(m);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
    a0 = _mm256_fmadd_ps(d0, d0, a0);
    a1 = _mm256_fmadd_ps(d1, d1, a1);
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(a0, a1));
  double s = 0;
  for (int j = 0; j < 8; j++) s += t[j];
  for (; i < n; i++) s += (double)(x[i] - m) * (x[i] - m);
  return s;
}

// The gradient through a clamp to [lo, hi] whose output is y: g where lo < y < hi, else 0
// (relu's 'o > 0 ? g : 0' for lo = 0, hi = inf). y is recomputed from x as the forward made
// it, z = fmaf(x, scale, shift) (bn_forward, the same bits), and lo < y < hi iff lo < z < hi
// (NaN: neither): backward never reads y.
typedef struct { int on; float scale, shift, lo, hi; } clampmask;
#define MASKED(g, x, i, k) ((k)->on && !(fmaf((x)[i], (k)->scale, (k)->shift) > (k)->lo && \
                            fmaf((x)[i], (k)->scale, (k)->shift) < (k)->hi) ? 0.0f : (g)[i])

static inline __m256 vmasked (const float *go, const float *x, int i, const clampmask *k) {
  __m256 g = _mm256_loadu_ps(go + i);
  if (!k->on) return g;
  __m256 z = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(k->scale), _mm256_set1_ps(k->shift));
  __m256 keep = _mm256_and_ps(_mm256_cmp_ps(z, _mm256_set1_ps(k->lo), _CMP_GT_OQ),
                              _mm256_cmp_ps(z, _mm256_set1_ps(k->hi), _CMP_LT_OQ));
  return _mm256_and_ps(g, keep);
}

// *sg += sum(go), *sgx += sum(go * (x - m)), go masked as in MASKED
static void vgrad_sums (double *sg, double *sgx, const float *go, const clampmask *k,
                        const float *x, int n, float m) {
  __m256 a = _mm256_setzero_ps(), ax = _mm256_setzero_ps(), vm = _mm256_set1_ps(m);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = vmasked(go, x, i, k);
    a = _mm256_add_ps(a, g);
    ax = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_loadu_ps(x + i), vm), ax);
  }
  float t[8], tx[8];
  _mm256_storeu_ps(t, a);
  _mm256_storeu_ps(tx, ax);
  double s = 0, sx = 0;
  for (int j = 0; j < 8; j++) s += t[j], sx += tx[j];
  for (; i < n; i++) {
    float g = MASKED(go, x, i, k);
    s += g, sx += (double)g * (x[i] - m);
  }
  *sg += s, *sgx += sx;
}
#else   // built without -march=x86-64-v3: the same sums, scalar
static double vsum (const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  return s;
}
static double vsqdev (const float *x, int n, float m) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)(x[i] - m) * (x[i] - m);
  return s;
}
typedef struct { int on; float scale, shift, lo, hi; } clampmask;
#define MASKED(g, x, i, k) ((k)->on && !(fmaf((x)[i], (k)->scale, (k)->shift) > (k)->lo && \
                            fmaf((x)[i], (k)->scale, (k)->shift) < (k)->hi) ? 0.0f : (g)[i])
static void vgrad_sums (double *sg, double *sgx, const float *go, const clampmask *k,
                        const float *x, int n, float m) {
  for (int i = 0; i < n; i++) {
    float g = MASKED(go, x, i, k);
    *sg += g, *sgx += (double)g * (x[i] - m);
  }
}
#endif

// Channel c's batch mean and biased variance; inp is (B,C,S).
static void channel_stats (float *mean, float *var, const float *inp, int B, int C, int S, int c) {
  double s = 0, q = 0, M = (double)B * S;
  for (int n = 0; n < B; n++) s += vsum(inp + ((size_t)n * C + c) * S, S);
  float m = (float)(s / M);
  for (int n = 0; n < B; n++)    // two passes: no cancellation for large means
    q += vsqdev(inp + ((size_t)n * C + c) * S, S, m);
  *mean = m;
  *var = (float)(q / M);
}

// mean/var are (C), inp is (B,C,S).
void batchnorm_stats (float *mean, float *var, const float *inp, int B, int C, int S) {
  #pragma omp parallel for schedule(static) if (BIG(B, C, S))
  for (int c = 0; c < C; c++) channel_stats(mean + c, var + c, inp, B, C, S, c);
}

// Channel c's affine (y = x * scale + shift before the clamp) and clamp: bn_forward applies
// it, bn_backward recomputes the clamp's mask from x with it (the same bits).
static clampmask clamp_of (int clamp, float lo, float hi, const float *beta, const float *mean,
                           const float *invstd, const float *gamma, int c) {
  float scale = (gamma ? gamma[c] : 1.0f) * invstd[c];
  float shift = (beta ? beta[c] : 0.0f) - mean[c] * scale;
  return (clampmask){ clamp, scale, shift, lo, hi };
}

// As batchnorm_forward, then each output clamped to [lo, hi] when 'clamp' (NaN -> lo, as relu).
static void bn_forward (float *out, const float *inp, const float *mean, const float *invstd,
                        const float *gamma, const float *beta, int B, int C, int S,
                        int clamp, float lo, float hi) {
  // one (n, c) plane per iteration: all B*C planes share the threads, even when C is small
  #pragma omp parallel for schedule(static) if (BIG(B, C, S))
  for (int64_t p = 0; p < (int64_t)B * C; p++) {
    clampmask k = clamp_of(clamp, lo, hi, beta, mean, invstd, gamma, (int)(p % C));
    // one (n, c) plane: the same fmadd-then-clamp as the inference epilogue (same bits)
    trl_epilogue e = { &k.scale, &k.shift, clamp ? lo : -INFINITY, clamp ? hi : INFINITY };
    trl_epilogue_row(out + (size_t)p * S, inp + (size_t)p * S, &e, 0, S);
  }
}

// Training: per channel the batch stats, the running stats moved, then the channel's output
// (the same bits as batchnorm_stats, then bn_forward), while its planes are still in cache.
static void bn_train_forward (float *out, const float *inp, float *mean, float *invstd,
                              float *rmean, float *rvar, const float *gamma, const float *beta,
                              float momentum, float eps, int B, int C, int S, int clamp,
                              float lo, float hi) {
  #pragma omp parallel for schedule(static) if (BIG(B, C, S))
  for (int c = 0; c < C; c++) {
    float var;
    channel_stats(mean + c, &var, inp, B, C, S, c);
    rmean[c] = momentum * rmean[c] + (1 - momentum) * mean[c];
    rvar[c] = momentum * rvar[c] + (1 - momentum) * var;
    invstd[c] = 1.0f / sqrtf(var + eps);
    clampmask k = clamp_of(clamp, lo, hi, beta, mean, invstd, gamma, c);
    trl_epilogue e = { &k.scale, &k.shift, clamp ? lo : -INFINITY, clamp ? hi : INFINITY };
    for (int n = 0; n < B; n++)
      trl_epilogue_row(out + ((size_t)n * C + c) * S, inp + ((size_t)n * C + c) * S, &e, 0, S);
  }
}

// out/inp are (B,C,S); mean, invstd, gamma, beta are (C) (gamma/beta NULL: 1/0).
void batchnorm_forward (float *out, const float *inp, const float *mean, const float *invstd,
                        const float *gamma, const float *beta, int B, int C, int S) {
  bn_forward(out, inp, mean, invstd, gamma, beta, B, C, S, 0, 0, 0);
}

// dinp/dout/inp are (B,C,S), dgamma/dbeta/mean/invstd/gamma are (C); NULL outputs are skipped.
// dx (+)= k * masked(go) + a * x + b over one plane of n values
static void dx_plane (float *dx, const float *go, const float *x, int n, float k, float a,
                      float b, const clampmask *cm, int write) {
  int i = 0;
#ifdef VEC8
  __m256 vk = _mm256_set1_ps(k), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  for (; i + 8 <= n; i += 8) {
    __m256 r = _mm256_fmadd_ps(vk, vmasked(go, x, i, cm),
                               _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), vb));
    _mm256_storeu_ps(dx + i, write ? r : _mm256_add_ps(_mm256_loadu_ps(dx + i), r));
  }
#endif
  for (; i < n; i++) {
    float r = k * MASKED(go, x, i, cm) + a * x[i] + b;
    dx[i] = write ? r : dx[i] + r;
  }
}

// As batchnorm_backward; with 'write', dinp is written (dx = ...) instead of accumulated.
// With 'clamp' (the forward clamped its output to [lo, hi], with beta (C) or NULL as its
// shift), dout is first masked as in MASKED.
static void bn_backward (float *dinp, float *dgamma, float *dbeta, const float *dout,
                         int clamp, float lo, float hi, const float *beta,
                         const float *inp, const float *mean, const float *invstd,
                         const float *gamma, int B, int C, int S, int training, int write) {
  double M = (double)B * S;
  // One channel at a time, its data gradient right after its sums: the channel's planes of
  // x and dout are read again while still in cache (they fit in L2 up to 56x56 maps at batch
  // 32), not after a sweep over the whole tensor.
  #pragma omp parallel for schedule(static) if (BIG(B, C, S))
  for (int c = 0; c < C; c++) {
    float m = mean[c], is = invstd[c];
    clampmask cm = clamp_of(clamp, lo, hi, beta, mean, invstd, gamma, c);
    double sg = 0, sgx = 0;    // sum(dout), sum(dout * (x - m))
    for (int n = 0; n < B; n++) {
      size_t o = ((size_t)n * C + c) * S;
      vgrad_sums(&sg, &sgx, dout + o, &cm, inp + o, S, m);
    }
    sgx *= is;
    if (dbeta) dbeta[c] += (float)sg;
    if (dgamma) dgamma[c] += (float)sgx;
    if (!dinp) continue;
    // training: dx = k * (dout - mean(dout) - xhat * mean(dout * xhat)); the batch stats
    // depend on x. Inference: the stats are constants and dx = k * dout.
    float k = (gamma ? gamma[c] : 1.0f) * is;
    float mg = training ? (float)(sg / M) : 0.0f, mgx = training ? (float)(sgx / M) : 0.0f;
    float a = -k * is * mgx, b = -k * mg - a * m;   // dx += k*go + a*x + b
    for (int n = 0; n < B; n++) {
      size_t o = ((size_t)n * C + c) * S;
      dx_plane(dinp + o, dout + o, inp + o, S, k, a, b, &cm, write);
    }
  }
}

void batchnorm_backward (float *dinp, float *dgamma, float *dbeta, const float *dout,
                         const float *inp, const float *mean, const float *invstd,
                         const float *gamma, int B, int C, int S, int training) {
  bn_backward(dinp, dgamma, dbeta, dout, 0, 0, 0, NULL, inp, mean, invstd, gamma, B, C, S,
              training, 0);
}

// The textbook chain rule through var and mean (Ioffe & Szegedy, 2015), training mode only;
// it recomputes the batch stats. Shapes as in batchnorm_backward.
void batchnorm_backward_ref (float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const float *inp, const float *gamma, float eps,
                             int B, int C, int S) {
  double M = (double)B * S;
  for (int c = 0; c < C; c++) {
    double mean = 0, var = 0, dvar = 0, dmean = 0, sdev = 0;
#define X(n, i) inp[((size_t)(n) * C + c) * S + (i)]
#define G(n, i) dout[((size_t)(n) * C + c) * S + (i)]
    for (int n = 0; n < B; n++) for (int i = 0; i < S; i++) mean += X(n, i) / M;
    for (int n = 0; n < B; n++)
      for (int i = 0; i < S; i++) var += (X(n, i) - mean) * (X(n, i) - mean) / M;
    double is = 1 / sqrt(var + eps), gm = gamma ? gamma[c] : 1.0;
    for (int n = 0; n < B; n++)
      for (int i = 0; i < S; i++) {
        double dxhat = G(n, i) * gm;
        dvar += dxhat * (X(n, i) - mean) * -0.5 * is * is * is;
        dmean += -dxhat * is;
        sdev += -2 * (X(n, i) - mean) / M;
        if (dbeta) dbeta[c] += G(n, i);
        if (dgamma) dgamma[c] += (float)(G(n, i) * (X(n, i) - mean) * is);
      }
    dmean += dvar * sdev;
    if (dinp)
      for (int n = 0; n < B; n++)
        for (int i = 0; i < S; i++)
          dinp[((size_t)n * C + c) * S + i] += (float)(G(n, i) * gm * is +
                                                       dvar * 2 * (X(n, i) - mean) / M + dmean / M);
#undef X
#undef G
  }
}

/* }================================================================== */

/* {==================================================================
** Builder and tape node
** =================================================================== */

typedef struct { int B, C, S, training, clamp; float lo, hi; } bn_info;

// saved: [0] contiguous x, [1] mean (C), [2] invstd (C), [3] contiguous gamma or NULL,
// [4] contiguous beta or NULL when a clamp is fused (with x, it gives the gradient mask).
static trl_status bn_bwd (trl_node *node, const trl_tensor *gout, trl_tensor **gin) {
  const bn_info *in = (const bn_info *)node->payload;
  trl_tensor *gc = NULL, *gamma = node->saved[3], *beta = node->saved[4];
  if (!trl_is_contiguous(gout)) TRL_TRY(trl_tensor_clone(&gc, gout, TRL_F32));
  bn_backward(gin[0] ? trl_f32(gin[0]) : NULL, gin[1] ? trl_f32(gin[1]) : NULL,
              gin[2] ? trl_f32(gin[2]) : NULL, trl_f32(gc ? gc : gout),
              in->clamp, in->lo, in->hi, beta ? trl_f32(beta) : NULL,
              trl_f32(node->saved[0]), trl_f32(node->saved[1]), trl_f32(node->saved[2]),
              gamma ? trl_f32(gamma) : NULL, in->B, in->C, in->S, in->training,
              (int)(node->fresh & 1u));   // a fresh dx is written (overwrites, below)
  trl_tensor_release(gc);
  return TRL_OK;
}

static trl_status check_vec (const char *what, const trl_tensor *v, const trl_tensor *x,
                             int need_contig) {
  char vs[TRL_SHAPELEN], xs[TRL_SHAPELEN];
  if (v->dtype != TRL_F32 || v->ndim != 1 || v->shape[0] != x->shape[1] ||
      (need_contig && !trl_is_contiguous(v)))
    return trl_fail(TRL_ESHAPE, "batchnorm: %s must be a %sfloat32 vector of C = %lld, x is %s, "
                    "%s is %s (%s)", what, need_contig ? "contiguous " : "",
                    (long long)x->shape[1], trl_tensor_shape_str(xs, x), what,
                    trl_tensor_shape_str(vs, v), trl_dtype_name(v->dtype));
  return TRL_OK;
}

trl_status trl_batchnorm (trl_tensor **out, trl_tensor *x, trl_tensor *gamma, trl_tensor *beta,
                          trl_tensor *running_mean, trl_tensor *running_var,
                          const trl_bn_params *p) {
  char xs[TRL_SHAPELEN];
  if (x->dtype != TRL_F32)
    return trl_fail(TRL_ETYPE, "batchnorm: expected a float32 x, got %s", trl_dtype_name(x->dtype));
  if (x->ndim < 2)
    return trl_fail(TRL_ESHAPE, "batchnorm: expected x of (N,C,...), x is %s",
                    trl_tensor_shape_str(xs, x));
  if (!running_mean || !running_var)
    return trl_fail(TRL_EARG, "batchnorm: running_mean and running_var are required");
  if (gamma) TRL_TRY(check_vec("gamma", gamma, x, 0));
  if (beta) TRL_TRY(check_vec("beta", beta, x, 0));
  TRL_TRY(check_vec("running_mean", running_mean, x, 1));
  TRL_TRY(check_vec("running_var", running_var, x, 1));
  if (!(p->eps > 0) || !(p->momentum >= 0 && p->momentum <= 1))
    return trl_fail(TRL_EARG, "batchnorm: need eps > 0 and 0 <= momentum <= 1, got eps %g, "
                    "momentum %g", p->eps, p->momentum);
  int64_t S = 1;
  for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
  if (x->shape[0] * S == 0 || x->shape[0] > INT32_MAX || x->shape[1] > INT32_MAX || S > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "batchnorm: expected a non-empty batch of sane size, x is %s",
                    trl_tensor_shape_str(xs, x));
  if (p->clamp && !(p->lo <= p->hi))
    return trl_fail(TRL_EARG, "batchnorm: clamp bounds %g > %g", p->lo, p->hi);
  bn_info info = { (int)x->shape[0], (int)x->shape[1], (int)S,
                   p->training && !p->use_global_stats, p->clamp != 0, p->lo, p->hi };
  int C = info.C;
  trl_tensor *xc = NULL, *gc = NULL, *bc = NULL, *mean = NULL, *invstd = NULL, *y = NULL;
  trl_status st;
  int64_t cs[1] = { C };
  if ((st = trl_tensor_contiguous(&xc, x)) != TRL_OK) goto done;
  if (gamma && (st = trl_tensor_contiguous(&gc, gamma)) != TRL_OK) goto done;
  if (beta && (st = trl_tensor_contiguous(&bc, beta)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty(&mean, TRL_F32, 1, cs)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty(&invstd, TRL_F32, 1, cs)) != TRL_OK) goto done;
  if ((st = trl_tensor_empty_like(&y, xc)) != TRL_OK) goto done;
  float *mu = trl_f32(mean), *is = trl_f32(invstd);
  float *rm = trl_f32(running_mean), *rv = trl_f32(running_var);
  if (info.training) {
    trl_tensor_touch(running_mean);
    trl_tensor_touch(running_var);
    bn_train_forward(trl_f32(y), trl_f32(xc), mu, is, rm, rv, gc ? trl_f32(gc) : NULL,
                     bc ? trl_f32(bc) : NULL, p->momentum, p->eps, info.B, C, info.S,
                     info.clamp, info.lo, info.hi);
  } else {
    for (int c = 0; c < C; c++) mu[c] = rm[c], is[c] = 1.0f / sqrtf(rv[c] + p->eps);
    bn_forward(trl_f32(y), trl_f32(xc), mu, is, gc ? trl_f32(gc) : NULL,
               bc ? trl_f32(bc) : NULL, info.B, C, info.S, info.clamp, info.lo, info.hi);
  }
  trl_node *node;
  trl_tensor *in[3] = { x, gamma, beta };
  if ((st = trl_tape_record(&node, y, TRL_OP_BATCHNORM, bn_bwd, 3, in, sizeof info)) != TRL_OK)
    goto done;
  if (node) {
    memcpy(node->payload, &info, sizeof info);
    node->overwrites = node->reuses = 1u;   // dx[i] from dout[i], x[i] and the sums
    trl_node_save(node, 0, xc);
    trl_node_save(node, 1, mean);
    trl_node_save(node, 2, invstd);
    if (gc) trl_node_save(node, 3, gc);
    if (info.clamp && bc) trl_node_save(node, 4, bc);
    st = trl_node_drop_values(node, 1u);   // backward reads the saved x, not the input
  }
done:
  trl_tensor_release(xc);
  trl_tensor_release(gc);
  trl_tensor_release(bc);
  trl_tensor_release(mean);
  trl_tensor_release(invstd);
  if (st != TRL_OK) trl_tensor_release(y);
  else *out = y;
  return st;
}

/* }================================================================== */

/* {==================================================================
** Inference fusion: predict-mode BatchNorm as a per-channel affine, then a clamp
** =================================================================== */

void trl_epilogue_row (float *out, const float *inp, const trl_epilogue *e, int c, int64_t n) {
  float s = e->scale ? e->scale[c] : 1.0f, t = e->shift ? e->shift[c] : 0.0f;
  float lo = e->lo, hi = e->hi;
  int clamp = lo != -INFINITY || hi != INFINITY;
  int64_t i = 0;
#ifdef VEC8
  // the same fmadd as batchnorm_forward, so a fused BN gives the same bits as the plain one
  __m256 vs = _mm256_set1_ps(s), vt = _mm256_set1_ps(t);
  __m256 vl = _mm256_set1_ps(lo), vh = _mm256_set1_ps(hi);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(inp + i), vs, vt);
    if (clamp) v = _mm256_min_ps(_mm256_max_ps(v, vl), vh);   // max(NaN, lo) is lo
    _mm256_storeu_ps(out + i, v);
  }
#endif
  for (; i < n; i++) {
    float v = fmaf(inp[i], s, t);   // fused as the vector loop (also at -O0)
    if (clamp) { v = v > lo ? v : lo; v = v < hi ? v : hi; }
    out[i] = v;
  }
}

void trl_epilogue_planes (float *out, const float *inp, const trl_epilogue *e, int B, int C,
                          int64_t S) {
  #pragma omp parallel for schedule(static) if (BIG(B, C, S))
  for (int64_t p = 0; p < (int64_t)B * C; p++)
    trl_epilogue_row(out + p * S, inp + p * S, e, (int)(p % C), S);
}

static trl_status check_fold_vec (const char *op, const char *what, const trl_tensor *v,
                                  int64_t C) {
  char vs[TRL_SHAPELEN];
  if (v->dtype != TRL_F32 || v->ndim != 1 || v->shape[0] != C)
    return trl_fail(TRL_ESHAPE, "%s: %s must be a float32 vector of %lld channels, got %s (%s)",
                    op, what, (long long)C, trl_tensor_shape_str(vs, v),
                    trl_dtype_name(v->dtype));
  return TRL_OK;
}

// v[i] of a float32 vector (any stride).
static float vec_at (const trl_tensor *v, int64_t i) {
  return trl_f32(v)[i * v->stride[0]];
}

trl_status trl_bn_fold (float *scale, float *shift, const trl_bn_ref *bn, const trl_tensor *b,
                        int64_t C, const char *op) {
  if (!bn) {   // no BatchNorm: scale 1, shift = the bias (or 0)
    if (b) TRL_TRY(check_fold_vec(op, "bias", b, C));
    for (int64_t c = 0; c < C; c++) scale[c] = 1.0f, shift[c] = b ? vec_at(b, c) : 0.0f;
    return TRL_OK;
  }
  if (!bn->mean || !bn->var)
    return trl_fail(TRL_EARG, "%s: running_mean and running_var are required", op);
  if (!(bn->eps > 0)) return trl_fail(TRL_EARG, "%s: need eps > 0, got %g", op, bn->eps);
  const char *names[5] = { "gamma", "beta", "running_mean", "running_var", "bias" };
  const trl_tensor *vs[5] = { bn->gamma, bn->beta, bn->mean, bn->var, b };
  for (int k = 0; k < 5; k++)
    if (vs[k]) TRL_TRY(check_fold_vec(op, names[k], vs[k], C));
  for (int64_t c = 0; c < C; c++) {   // as trl_batchnorm: scale = gamma*invstd, then the shift
    float is = 1.0f / sqrtf(vec_at(bn->var, c) + bn->eps);
    float sc = (bn->gamma ? vec_at(bn->gamma, c) : 1.0f) * is;
    float m = vec_at(bn->mean, c) - (b ? vec_at(b, c) : 0.0f);
    scale[c] = sc;
    shift[c] = (bn->beta ? vec_at(bn->beta, c) : 0.0f) - m * sc;
  }
  return TRL_OK;
}

trl_status trl_bn_act (trl_tensor **out, trl_tensor *x, const trl_bn_ref *bn, float lo,
                       float hi) {
  char xs[TRL_SHAPELEN];
  if (x->dtype != TRL_F32 || x->ndim < 2)
    return trl_fail(TRL_ESHAPE, "bn_act: expected a float32 x of (N,C,...), x is %s (%s)",
                    trl_tensor_shape_str(xs, x), trl_dtype_name(x->dtype));
  trl_tensor *in[1] = { x };
  if (trl_tape_wants(1, in))
    return trl_fail(TRL_EARG, "bn_act: inference only, but autograd is recording x %s",
                    trl_tensor_shape_str(xs, x));
  if (!(lo <= hi)) return trl_fail(TRL_EARG, "bn_act: clamp bounds %g > %g", lo, hi);
  int64_t B = x->shape[0], C = x->shape[1], S = 1;
  for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
  if (B > INT32_MAX || C > INT32_MAX)
    return trl_fail(TRL_ESHAPE, "bn_act: x is too large, %s", trl_tensor_shape_str(xs, x));
  float *sc = trl_alloc((size_t)C * 2 * sizeof(float));
  if (!sc) return trl_fail(TRL_ENOMEM, "bn_act: out of memory for %lld channels", (long long)C);
  trl_tensor *xc = NULL, *y = NULL;
  trl_status st = trl_bn_fold(sc, sc + C, bn, NULL, C, "bn_act");
  if (st == TRL_OK) st = trl_tensor_contiguous(&xc, x);
  if (st == TRL_OK) st = trl_tensor_empty_like(&y, xc);
  if (st == TRL_OK) {
    trl_epilogue e = { sc, sc + C, lo, hi };
    trl_epilogue_planes(trl_f32(y), trl_f32(xc), &e, (int)B, (int)C, S);
    *out = y;
  }
  trl_free(sc, (size_t)C * 2 * sizeof(float));
  trl_tensor_release(xc);
  return st;
}

/* }================================================================== */
