/*
** nn.h: the neural-network ops of trl on NCHW float32 (Gluon semantics, see GLUON_CONTRACT.md):
** conv2d, max/avg/global-avg pooling, batchnorm, softmax, log_softmax, fused softmax
** cross-entropy and dropout. Builders check shapes, allocate, run the kernels and record a
** tape node. Kernels work on raw contiguous buffers, never allocate, and their backward
** ACCUMULATES (+=) into every non-NULL gradient; the '_ref' kernels are naive versions for tests.
*/
#ifndef TRL_NN_H
#define TRL_NN_H

#include "ops.h"

/* {==================================================================
** Convolution (conv2d.c)
** =================================================================== */

typedef struct {
  int stride[2], pad[2], dilation[2];   // (h, w)
  int groups;
} trl_conv_params;

// stride 1, pad 0, dilation 1, groups 1.
trl_conv_params trl_conv_defaults (void);

// x is (N,C,H,W), w is (OC,C/groups,KH,KW), b is (OC) or NULL; out is (N,OC,OH,OW) with
// OH = (H + 2*pad - dilation*(KH-1) - 1) / stride + 1.
trl_status trl_conv2d (trl_tensor **out, trl_tensor *x, trl_tensor *w, trl_tensor *b,
                       const trl_conv_params *p);

// Every size a conv2d kernel needs.
typedef struct {
  int B, C, H, W;          // input
  int OC, KH, KW;          // weight is (OC, C/G, KH, KW)
  int OH, OW;              // output
  int sh, sw, ph, pw, dh, dw, G;
} trl_conv_geom;

// Fill 'g' from the shapes and params, or fail naming both shapes.
trl_status conv2d_check (trl_conv_geom *g, const trl_tensor *x, const trl_tensor *w,
                         const trl_tensor *b, const trl_conv_params *p);
// Floats of scratch that conv2d_forward / conv2d_backward need in 'ws'.
size_t conv2d_workspace (const trl_conv_geom *g);
// out is (B,OC,OH,OW), inp is (B,C,H,W), w is (OC,C/G,KH,KW), b is (OC) or NULL.
void conv2d_forward (float *out, const float *inp, const float *w, const float *b, float *ws,
                     const trl_conv_geom *g);
// dinp/dw/db shaped like inp/w/b, each may be NULL; dout is (B,OC,OH,OW).
void conv2d_backward (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                      const float *w, float *ws, const trl_conv_geom *g);
void conv2d_forward_ref (float *out, const float *inp, const float *w, const float *b,
                         const trl_conv_geom *g);
void conv2d_backward_ref (float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const trl_conv_geom *g);

/* }================================================================== */

/* {==================================================================
** Pooling (pool.c)
** =================================================================== */

typedef struct {
  int kernel[2], stride[2], pad[2];    // (h, w)
  int ceil_mode;                       // 0: floor ('valid'), 1: ceil ('full')
  int count_include_pad;               // avg only: divide by the window size including padding
} trl_pool_params;

// kernel k x k, stride k (Gluon: strides default to the pool size), pad 0, floor, include pad.
trl_pool_params trl_pool_defaults (int k);

// x is (N,C,H,W); out is (N,C,OH,OW). Padding never wins a max.
trl_status trl_maxpool2d (trl_tensor **out, trl_tensor *x, const trl_pool_params *p);
trl_status trl_avgpool2d (trl_tensor **out, trl_tensor *x, const trl_pool_params *p);
// x is (N,C,H,W); out is (N,C,1,1).
trl_status trl_global_avgpool2d (trl_tensor **out, trl_tensor *x);

typedef struct {
  int B, C, H, W, OH, OW;
  int kh, kw, sh, sw, ph, pw;
  int count_include_pad;
} trl_pool_geom;

trl_status pool2d_check (trl_pool_geom *g, const char *op, const trl_tensor *x,
                         const trl_pool_params *p);
// out is (B,C,OH,OW), inp is (B,C,H,W).
void maxpool2d_forward (float *out, const float *inp, const trl_pool_geom *g);
// The gradient goes to the first maximum of each window (row-major order).
void maxpool2d_backward (float *dinp, const float *dout, const float *inp,
                         const trl_pool_geom *g);
// The same into a dinp that holds garbage: written, not accumulated.
void maxpool2d_backward_write (float *dinp, const float *dout, const float *inp,
                               const trl_pool_geom *g);
// maxpool2d_forward that also writes each output's tap (row * kw + column from the window's
// corner in the padded input) of the element maxpool2d_backward would pick; kh * kw <= 256.
void maxpool2d_forward_arg (float *out, uint8_t *arg, const float *inp, const trl_pool_geom *g);
// maxpool2d_backward from those taps (the same bits), into a dinp holding garbage if 'write'.
void maxpool2d_backward_arg (float *dinp, const float *dout, const uint8_t *arg, int write,
                             const trl_pool_geom *g);
void avgpool2d_forward (float *out, const float *inp, const trl_pool_geom *g);
void avgpool2d_backward (float *dinp, const float *dout, const trl_pool_geom *g);
void maxpool2d_forward_ref (float *out, const float *inp, const trl_pool_geom *g);
void maxpool2d_backward_ref (float *dinp, const float *dout, const float *inp,
                             const trl_pool_geom *g);
void avgpool2d_forward_ref (float *out, const float *inp, const trl_pool_geom *g);
void avgpool2d_backward_ref (float *dinp, const float *dout, const trl_pool_geom *g);
// out is (BC), inp is (BC,HW): one mean per plane.
void global_avgpool2d_forward (float *out, const float *inp, int BC, int HW);
void global_avgpool2d_backward (float *dinp, const float *dout, int BC, int HW);

/* }================================================================== */

/* {==================================================================
** Inference fusion: predict-mode BatchNorm and a clamp folded into one pass (batchnorm.c),
** on its own or as the epilogue of conv2d (conv2d.c). net:hybridize() uses these.
** =================================================================== */

// out[n,c,i] = clamp(scale[c]*inp[n,c,i] + shift[c], lo, hi); lo = -INFINITY and
// hi = INFINITY clamp nothing, ReLU is (0, INFINITY), ReLU6 (0, 6). NaNs become lo, as relu's do.
typedef struct { const float *scale, *shift; float lo, hi; } trl_epilogue;

// One row of 'n' elements of channel 'c' (out may be inp).
void trl_epilogue_row (float *out, const float *inp, const trl_epilogue *e, int c, int64_t n);
// out/inp (B,C,S).
void trl_epilogue_planes (float *out, const float *inp, const trl_epilogue *e, int B, int C,
                          int64_t S);

// A predict-mode BatchNorm's parameters: gamma/beta may be NULL (1/0), mean/var are required.
typedef struct { trl_tensor *gamma, *beta, *mean, *var; float eps; } trl_bn_ref;

// scale/shift (C) of 'bn' after an optional bias b (C): scale = gamma/sqrt(var+eps),
// shift = beta + (b - mean)*scale; bn NULL: scale 1, shift b (or 0). 'op' names the caller
// in errors about the vectors.
trl_status trl_bn_fold (float *scale, float *shift, const trl_bn_ref *bn, const trl_tensor *b,
                        int64_t C, const char *op);

// x (N,C,...) -> clamp(predict-mode batchnorm(x), lo, hi). Inference only: fails when autograd
// would record x.
trl_status trl_bn_act (trl_tensor **out, trl_tensor *x, const trl_bn_ref *bn, float lo,
                       float hi);

// A conv pack keeps a conv's weight in the forms its forward makes of it (packed into GEMM
// panels, or Winograd-transformed: 4x the weight's floats), so that inference does not redo
// that on every call. Its content is tied to the weight's storage and stamp (tensor.h): any
// write through the tensor API, or another weight, makes it rebuild on the next call.
typedef struct trl_conv_pack trl_conv_pack;
trl_conv_pack *trl_conv_pack_new (void);             // NULL when out of memory
void trl_conv_pack_clear (trl_conv_pack *p);        // frees what it holds; p stays usable
void trl_conv_pack_free (trl_conv_pack *p);         // NULL is fine
size_t trl_conv_pack_bytes (const trl_conv_pack *p);
long trl_conv_pack_builds (const trl_conv_pack *p);   // forms made so far

// conv2d, then (bn may be NULL) predict-mode BatchNorm, then the clamp, with the affine and
// clamp applied to each chunk of output while it is in cache. Inference only, as trl_bn_act.
// With 'pack' (or NULL) the weight's packed form comes from there.
trl_status trl_conv2d_bn_act (trl_tensor **out, trl_tensor *x, trl_tensor *w, trl_tensor *b,
                              const trl_bn_ref *bn, float lo, float hi,
                              const trl_conv_params *p, trl_conv_pack *pack);
// conv2d_forward with an epilogue instead of a bias (e may be NULL: no epilogue, no bias).
void conv2d_forward_epi (float *out, const float *inp, const float *w, const trl_epilogue *e,
                         float *ws, const trl_conv_geom *g);

// One conv of a bottleneck: its weight, bias (or NULL), predict-mode BatchNorm (or NULL),
// clamp [lo, hi] (none: -INFINITY, INFINITY) and pack (or NULL; the 1x1 stages use it).
typedef struct {
  trl_tensor *w, *b;
  const trl_bn_ref *bn;
  float lo, hi;
  trl_conv_pack *pack;
} trl_bneck_stage;

// MobileNetV2's LinearBottleneck in inference (bottleneck.c): x (N,C,H,W) -> st[0], a 1x1
// conv to E channels (weight (E,C,1,1)), st[1], a 3x3 depthwise conv with 'stride' 1 or 2 and
// pad 1 (weight (E,1,3,3)), st[2], a 1x1 conv to OC channels (weight (OC,E,1,1)), each with
// its BatchNorm and clamp; with 'residual' (stride 1, OC = C) + x. The same bits as the six
// ops one by one (conv2d_bn_act three times, then the add), without the E-channel tensors
// ever going to memory. Inference only, as trl_bn_act.
trl_status trl_bottleneck (trl_tensor **out, trl_tensor *x, const trl_bneck_stage st[3],
                           int stride, int residual);
// The most floats of expanded rows a thread's band holds (0: the default, 4 MB); tests set
// it small to run many bands on small maps. Not while a bottleneck runs.
void trl_bottleneck_band (size_t floats);

/* }================================================================== */

/* {==================================================================
** Batch normalization over axis 1 (batchnorm.c)
** =================================================================== */

typedef struct {
  float eps, momentum;
  int training;            // batch statistics (and update the running ones) when set
  int use_global_stats;    // running statistics even while training
  int clamp;               // then clamp the output to [lo, hi] (ReLU: 0, INFINITY; ReLU6: 0, 6):
  float lo, hi;            // one pass, and backward masks the gradient where lo < y < hi
} trl_bn_params;

// eps 1e-5, momentum 0.9, training = trl_tape_is_training(), use_global_stats 0, no clamp.
trl_bn_params trl_bn_defaults (void);

// x is (N,C,...), gamma/beta/running_mean/running_var are (C); gamma NULL means 1, beta NULL
// means 0. Training updates running_* in place (running = m*running + (1-m)*batch, with the
// biased batch variance, as MXNet does). Gradients flow to x, gamma and beta.
trl_status trl_batchnorm (trl_tensor **out, trl_tensor *x, trl_tensor *gamma, trl_tensor *beta,
                          trl_tensor *running_mean, trl_tensor *running_var,
                          const trl_bn_params *p);

// mean/var are (C), inp is (B,C,S): batch mean and biased variance.
void batchnorm_stats (float *mean, float *var, const float *inp, int B, int C, int S);
// out = gamma*(inp-mean)*invstd + beta; out/inp are (B,C,S), the rest (C), gamma/beta may be NULL.
void batchnorm_forward (float *out, const float *inp, const float *mean, const float *invstd,
                        const float *gamma, const float *beta, int B, int C, int S);
// 'training' differentiates through the batch statistics; else mean/invstd are constants.
void batchnorm_backward (float *dinp, float *dgamma, float *dbeta, const float *dout,
                         const float *inp, const float *mean, const float *invstd,
                         const float *gamma, int B, int C, int S, int training);
void batchnorm_backward_ref (float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const float *inp, const float *gamma, float eps,
                             int B, int C, int S);

/* }================================================================== */

/* {==================================================================
** Softmax family (softmax.c)
** =================================================================== */

// Softmax / log-softmax of 'x' along 'dim' (negative counts from the end).
trl_status trl_softmax (trl_tensor **out, trl_tensor *x, int dim);
trl_status trl_log_softmax (trl_tensor **out, trl_tensor *x, int dim);
// logits is (N,K) f32, labels is (N) i64 in [0,K); out is (N): -log softmax(logits)[label].
trl_status trl_softmax_xent (trl_tensor **out, trl_tensor *logits, trl_tensor *labels);

// out/inp are (O,K,I), normalized along K; 'logp' selects log-softmax.
void softmax_forward (float *out, const float *inp, int O, int K, int I, int logp);
// out is the forward's result.
void softmax_backward (float *dinp, const float *dout, const float *out, int O, int K, int I,
                       int logp);
void softmax_forward_ref (float *out, const float *inp, int O, int K, int I, int logp);
// loss is (N), prob is (N,K) (saved for backward), logits is (N,K), labels is (N) in range.
void softmax_xent_forward (float *loss, float *prob, const float *logits,
                           const int64_t *labels, int N, int K);
// dlogits is (N,K), dloss is (N).
void softmax_xent_backward (float *dlogits, const float *dloss, const float *prob,
                            const int64_t *labels, int N, int K);

/* }================================================================== */

/* {==================================================================
** Dropout (dropout.c)
** =================================================================== */

// Training (training != 0 and p > 0): zero each element with probability p and scale the rest
// by 1/(1-p), drawing from 'rng' (NULL: trl_rng_default()); else 'out' is a new ref to 'x'.
trl_status trl_dropout (trl_tensor **out, trl_tensor *x, double p, int training, trl_rng *rng);

// out/inp/mask are (n); mask gets 1 for kept elements.
void dropout_forward (float *out, uint8_t *mask, const float *inp, int64_t n, double p,
                      trl_rng *rng);
void dropout_backward (float *dinp, const float *dout, const uint8_t *mask, int64_t n,
                       float scale);

/* }================================================================== */

#endif
