/*
** pipeline.h: compiled Gluon transforms and the native batch loader behind DataLoader.
** A transform chain is an array of 'trl_pipe_op' (kind + parameters) that runs on uint8
** HWC images through imgproc.c; the loader reads, decodes and transforms samples on POSIX
** worker threads and writes them straight into prefetched batch tensors. It does not know
** about Lua, datasets or shuffling: the caller passes each epoch's sample order.
*/
#ifndef TRL_PIPELINE_H
#define TRL_PIPELINE_H

#include <stdint.h>

#include "ops.h"
#include "tensor.h"

/* {==================================================================
** Transform ops
** =================================================================== */

typedef enum {
  TRL_PIPE_RESIZE,             // to (w,h); h <= 0: keep the ratio, short side w
  TRL_PIPE_CENTER_CROP,        // (w,h): Gluon center_crop (scale_down, crop, resize)
  TRL_PIPE_RANDOM_RESIZED_CROP,// (w,h), f = {scale lo, hi, ratio lo, hi}
  TRL_PIPE_FLIP_LR,            // always
  TRL_PIPE_FLIP_TB,
  TRL_PIPE_RANDOM_FLIP_LR,     // with p = 0.5
  TRL_PIPE_RANDOM_FLIP_TB,
  TRL_PIPE_BRIGHTNESS,         // factor ~ U(f[0], f[1])
  TRL_PIPE_CONTRAST,
  TRL_PIPE_SATURATION,
  TRL_PIPE_HUE,
  TRL_PIPE_COLOR_JITTER,       // f = {brightness, contrast, saturation, hue}, random order
  TRL_PIPE_LIGHTING,           // f[0] = alpha std
  TRL_PIPE_TO_TENSOR,          // HWC -> CHW float32 / 255
  TRL_PIPE_NORMALIZE,          // n (1..4) means f[0..3], stds f[4..7]
  TRL_PIPE_NKINDS
} trl_pipe_kind;

typedef struct trl_pipe_op {
  trl_pipe_kind kind;
  int w, h, n;
  float f[8];
} trl_pipe_op;

// "resize", "center_crop", ...: the names the Lua side uses; -1 if unknown.
const char *trl_pipe_kind_name (trl_pipe_kind k);
int trl_pipe_kind_from_name (const char *name);

// The generator of one sample: a SplitMix64 hash of (seed, epoch, index) seeds 'r', so a
// sample's augmentation does not depend on which thread runs it.
void trl_pipe_sample_rng (trl_rng *r, uint64_t seed, uint64_t epoch, uint64_t index);

// Gluon 1.x random_size_crop on a w x h image: up to 10 draws of area ~ U(f0,f1)*w*h and
// ratio ~ U(f2,f3), cw = round(sqrt(area*ratio)), ch = round(sqrt(area/ratio)), kept when
// it fits; box = {x0, y0, cw, ch}. Returns 1 if a draw fitted, 0 for the centre-crop
// fallback (the largest crop of out_w:out_h's shape).
int trl_pipe_rrc_box (trl_rng *r, int w, int h, int out_w, int out_h, const float f[4],
                      int box[4]);

// Check 'ops' for images with 'c' channels and h x w pixels (<= 0: unknown); the result
// per sample is 'dt' with shape[0..ndim) (-1 where it depends on the image).
trl_status trl_pipe_check (const trl_pipe_op *ops, int n, int h, int w, int c,
                           trl_dtype *dt, int *ndim, int64_t shape[3]);

// Run 'ops' on 'img' (uint8 HWC; float32 HWC/CHW for to_tensor/normalize) with 'r';
// returns a new ref; 'img' is not modified.
trl_status trl_pipe_apply (trl_tensor **out, const trl_pipe_op *ops, int n, trl_tensor *img,
                           trl_rng *r);

/* }================================================================== */

/* {==================================================================
** Batch loader
** =================================================================== */

typedef struct trl_loader trl_loader;

// A loader over image files 'paths' with 0-based 'labels' (both copied), decoded with
// 'flag' (1 color, 0 gray) and transformed by 'ops' (copied), which must give a fixed
// sample shape. num_workers = 0 runs everything in 'trl_loader_next' on the caller's thread.
trl_status trl_loader_new (trl_loader **out, int64_t n_items, const char *const *paths,
                           const int64_t *labels, int flag, const trl_pipe_op *ops, int n_ops,
                           int num_workers, int prefetch);
// Begin an epoch over 'order' (0-based item indices, copied) in batches of 'batch_size'
// (the last may be shorter); stops the previous epoch first and starts the workers.
trl_status trl_loader_start (trl_loader *ld, const int64_t *order, int64_t n, int batch_size,
                             uint64_t seed, uint64_t epoch);
// The next batch (new refs: data (N,...) and int64 labels (N)); both NULL at the end. A
// failure (unreadable image) names the file; the epoch is over after it.
trl_status trl_loader_next (trl_loader *ld, trl_tensor **data, trl_tensor **label);
// End the epoch: wake and join the workers, drop prefetched batches. Idempotent.
void trl_loader_stop (trl_loader *ld);
void trl_loader_free (trl_loader *ld);                 // stops first; NULL is fine
int trl_loader_nthreads (const trl_loader *ld);        // worker threads running now

/* }================================================================== */

#endif
