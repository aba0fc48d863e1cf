/*
** pipeline.c: compiled transform chains (one code path for Lua's transforms and the
** loader) and the worker-thread batch loader. Workers claim samples in order, each sample
** draws from its own generator, and batches complete in a ring of 'prefetch' slots, so
** the result is the same for any number of workers. Errors are copied into the slot and
** re-raised on the consumer thread (the message buffer of err.c is per thread).
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "imgproc.h"
#include "mem.h"
#include "pipeline.h"

static const char *const kind_names[TRL_PIPE_NKINDS] = {
  "resize", "center_crop", "random_resized_crop", "flip_lr", "flip_tb", "random_flip_lr",
  "random_flip_tb", "brightness", "contrast", "saturation", "hue", "color_jitter", "lighting",
  "to_tensor", "normalize" };

// Gluon's class names, for messages.
static const char *const kind_titles[TRL_PIPE_NKINDS] = {
  "Resize", "CenterCrop", "RandomResizedCrop", "FlipLeftRight", "FlipTopBottom",
  "RandomFlipLeftRight", "RandomFlipTopBottom", "RandomBrightness", "RandomContrast",
  "RandomSaturation", "RandomHue", "RandomColorJitter", "RandomLighting", "ToTensor",
  "Normalize" };

const char *trl_pipe_kind_name (trl_pipe_kind k) {
  return (unsigned)k < TRL_PIPE_NKINDS ? kind_names[k] : "?";
}

int trl_pipe_kind_from_name (const char *name) {
  for (int k = 0; k < TRL_PIPE_NKINDS; k++)
    if (strcmp(name, kind_names[k]) == 0) return k;
  return -1;
}

/* {==================================================================
** Random draws (Python's random.uniform / randint on our generator)
** =================================================================== */

static uint64_t splitmix (uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void trl_pipe_sample_rng (trl_rng *r, uint64_t seed, uint64_t epoch, uint64_t index) {
  trl_rng_seed(r, splitmix(splitmix(splitmix(seed) ^ epoch) ^ index));
}

static double uniform (trl_rng *r, double lo, double hi) {
  return lo + (hi - lo) * trl_rng_uniform01(r);
}

static int randint (trl_rng *r, int lo, int hi) {   // inclusive, as random.randint
  int v = lo + (int)(trl_rng_uniform01(r) * (double)(hi - lo + 1));
  return v > hi ? hi : v;
}

/* }================================================================== */

/* {==================================================================
** Geometry of the crops
** =================================================================== */

// Gluon's scale_down: shrink the (cw,ch) crop, keeping its shape, until it fits w x h.
static void scale_down (int w, int h, int *cw, int *ch) {
  double fw = *cw, fh = *ch;
  if (h < fh) fw = fw * h / fh, fh = h;
  if (w < fw) fh = fh * w / fw, fw = w;
  *cw = fw < 1 ? 1 : (int)fw;
  *ch = fh < 1 ? 1 : (int)fh;
}

static void center_box (int w, int h, int out_w, int out_h, int box[4]) {
  int cw = out_w, ch = out_h;
  scale_down(w, h, &cw, &ch);
  box[0] = (w - cw) / 2, box[1] = (h - ch) / 2, box[2] = cw, box[3] = ch;
}

int trl_pipe_rrc_box (trl_rng *r, int w, int h, int out_w, int out_h, const float f[4],
                      int box[4]) {
  double area = (double)w * h;
  for (int i = 0; i < 10; i++) {
    double target = uniform(r, f[0], f[1]) * area;
    double ratio = uniform(r, f[2], f[3]);
    int cw = (int)rint(sqrt(target * ratio));          // Python round: half to even
    int ch = (int)rint(sqrt(target / ratio));
    if (cw >= 1 && ch >= 1 && cw <= w && ch <= h) {
      box[0] = randint(r, 0, w - cw);
      box[1] = randint(r, 0, h - ch);
      box[2] = cw, box[3] = ch;
      return 1;
    }
  }
  center_box(w, h, out_w, out_h, box);
  return 0;
}

/* }================================================================== */

/* {==================================================================
** Running a chain on one image
** =================================================================== */

// Per-thread buffers, grown on demand.
typedef struct scratch {
  uint8_t *buf[2];
  size_t cap[2];
  void *ws;
  size_t ws_cap;
} scratch;

// The image between ops: uint8 (h,w,c) rows 'stride' bytes apart, in buf[which] (or
// outside the scratch when which < 0, then it must not be written).
typedef struct img {
  uint8_t *p;
  int h, w, c, which;
  ptrdiff_t stride;
} img;

static int grow (void **p, size_t *cap, size_t n) {
  if (n <= *cap) return 1;
  trl_free(*p, *cap);
  *p = trl_alloc(n);
  *cap = *p ? n : 0;
  return *p != NULL;
}

static void scratch_free (scratch *sc) {
  for (int i = 0; i < 2; i++) trl_free(sc->buf[i], sc->cap[i]);
  trl_free(sc->ws, sc->ws_cap);
  memset(sc, 0, sizeof *sc);
}

// The scratch buffer the next image goes to, with room for n bytes.
static trl_status target (scratch *sc, const img *im, size_t n, const char *op, int *k) {
  *k = im->which == 0 ? 1 : 0;
  if (!grow((void **)&sc->buf[*k], &sc->cap[*k], n))
    return trl_fail(TRL_ENOMEM, "%s: out of memory for a %zu-byte image", op, n);
  return TRL_OK;
}

// Crop 'box' of 'im' and resize it to out_w x out_h unless it already has that size.
static trl_status crop_resize (scratch *sc, img *im, const int box[4], int out_w, int out_h,
                               const char *op) {
  const uint8_t *src = im->p + box[1] * im->stride + (ptrdiff_t)box[0] * im->c;
  int k;
  TRL_TRY(target(sc, im, (size_t)out_w * out_h * im->c, op, &k));
  if (box[2] == out_w && box[3] == out_h) {
    trl_crop_u8(im->p, im->stride, box[0], box[1], box[2], box[3], im->c, sc->buf[k]);
  } else {
    if (!grow(&sc->ws, &sc->ws_cap, trl_resize_ws_size(out_w, im->c)))
      return trl_fail(TRL_ENOMEM, "%s: out of memory", op);
    trl_resize_u8(src, box[3], box[2], im->stride, sc->buf[k], out_h, out_w, im->c, sc->ws);
  }
  im->p = sc->buf[k], im->which = k;
  im->w = out_w, im->h = out_h, im->stride = (ptrdiff_t)out_w * im->c;
  return TRL_OK;
}

// Make 'im' writable and contiguous (a copy into scratch when it is not ours).
static trl_status own (scratch *sc, img *im, const char *op) {
  if (im->which >= 0) return TRL_OK;
  int box[4] = { 0, 0, im->w, im->h };
  return crop_resize(sc, im, box, im->w, im->h, op);
}

static void color_jitter (img *im, const float *f, trl_rng *r) {
  int order[4] = { 0, 1, 2, 3 };
  for (int i = 3; i > 0; i--) {                        // Fisher-Yates, as std::shuffle
    int j = randint(r, 0, i), t = order[i];
    order[i] = order[j], order[j] = t;
  }
  for (int i = 0; i < 4; i++) {
    float p = f[order[i]];
    if (p <= 0) continue;
    float a = (float)uniform(r, -p, p);
    switch (order[i]) {
      case 0: trl_brightness_u8(im->p, (size_t)im->h * im->w * im->c, 1.f + a); break;
      case 1: trl_contrast_u8(im->p, im->h, im->w, im->c, 1.f + a); break;
      case 2: trl_saturation_u8(im->p, im->h, im->w, im->c, 1.f + a); break;
      default: trl_hue_u8(im->p, im->h, im->w, im->c, a); break;
    }
  }
}

// Run the uint8 ops of the chain (those before 'to_tensor') on 'im'; *stop is the index
// of the first op left over.
static trl_status run_u8 (scratch *sc, const trl_pipe_op *ops, int n, img *im, trl_rng *r,
                          int *stop) {
  int i;
  for (i = 0; i < n && ops[i].kind < TRL_PIPE_TO_TENSOR; i++) {
    const trl_pipe_op *o = &ops[i];
    const char *op = kind_titles[o->kind];
    int box[4] = { 0, 0, im->w, im->h };
    switch (o->kind) {
      case TRL_PIPE_RESIZE: {
        int w = o->w, h = o->h;
        if (h <= 0) {                                  // keep_ratio: short side to w
          if (im->h > im->w) h = (int)((int64_t)im->h * w / im->w);
          else h = w, w = (int)((int64_t)im->w * h / im->h);
        }
        if (!grow(&sc->ws, &sc->ws_cap, trl_resize_ws_size(w, im->c)))
          return trl_fail(TRL_ENOMEM, "%s: out of memory", op);
        int k;
        TRL_TRY(target(sc, im, (size_t)w * h * im->c, op, &k));
        trl_resize_u8(im->p, im->h, im->w, im->stride, sc->buf[k], h, w, im->c, sc->ws);
        im->p = sc->buf[k], im->which = k;
        im->w = w, im->h = h, im->stride = (ptrdiff_t)w * im->c;
        break;
      }
      case TRL_PIPE_CENTER_CROP:
        center_box(im->w, im->h, o->w, o->h, box);
        TRL_TRY(crop_resize(sc, im, box, o->w, o->h, op));
        break;
      case TRL_PIPE_RANDOM_RESIZED_CROP:
        trl_pipe_rrc_box(r, im->w, im->h, o->w, o->h, o->f, box);
        TRL_TRY(crop_resize(sc, im, box, o->w, o->h, op));
        break;
      case TRL_PIPE_FLIP_LR: case TRL_PIPE_RANDOM_FLIP_LR:
        if (o->kind == TRL_PIPE_RANDOM_FLIP_LR && trl_rng_uniform01(r) >= 0.5) break;
        TRL_TRY(own(sc, im, op));
        trl_flip_lr_u8(im->p, im->h, im->w, im->c);
        break;
      case TRL_PIPE_FLIP_TB: case TRL_PIPE_RANDOM_FLIP_TB:
        if (o->kind == TRL_PIPE_RANDOM_FLIP_TB && trl_rng_uniform01(r) >= 0.5) break;
        TRL_TRY(own(sc, im, op));
        trl_flip_tb_u8(im->p, im->h, im->w, im->c);
        break;
      case TRL_PIPE_LIGHTING: {
        float a[3];
        for (int j = 0; j < 3; j++) a[j] = (float)(trl_rng_normal01(r) * o->f[0]);
        TRL_TRY(own(sc, im, op));
        trl_lighting_u8(im->p, im->h, im->w, im->c, a);
        break;
      }
      case TRL_PIPE_COLOR_JITTER:
        TRL_TRY(own(sc, im, op));
        color_jitter(im, o->f, r);
        break;
      default: {                                       // one factor ~ U(f0, f1)
        float a = (float)uniform(r, o->f[0], o->f[1]);
        TRL_TRY(own(sc, im, op));
        if (o->kind == TRL_PIPE_BRIGHTNESS)
          trl_brightness_u8(im->p, (size_t)im->h * im->w * im->c, a);
        else if (o->kind == TRL_PIPE_CONTRAST) trl_contrast_u8(im->p, im->h, im->w, im->c, a);
        else if (o->kind == TRL_PIPE_SATURATION)
          trl_saturation_u8(im->p, im->h, im->w, im->c, a);
        else trl_hue_u8(im->p, im->h, im->w, im->c, a);
        break;
      }
    }
  }
  *stop = i;
  return TRL_OK;
}

// Write the result of ops[i..n) (nothing, or to_tensor then normalizes) on 'im' to 'dst'.
static void emit (const img *im, const trl_pipe_op *ops, int i, int n, void *dst) {
  if (i == n) {
    trl_crop_u8(im->p, im->stride, 0, 0, im->w, im->h, im->c, dst);
    return;
  }
  const uint8_t *src = im->p;                          // contiguous: callers 'own' it first
  float *out = dst;
  if (i + 1 < n) {                                     // to_tensor + normalize in one pass
    trl_to_tensor_u8(src, im->h, im->w, im->c, ops[i + 1].f, ops[i + 1].f + 4, ops[i + 1].n,
                     out);
    i += 2;
  } else {
    trl_to_tensor_u8(src, im->h, im->w, im->c, NULL, NULL, 0, out);
    i += 1;
  }
  for (; i < n; i++)
    trl_normalize_f32(out, 1, im->c, (int64_t)im->h * im->w, ops[i].f, ops[i].f + 4, ops[i].n);
}

trl_status trl_pipe_check (const trl_pipe_op *ops, int n, int h, int w, int c,
                           trl_dtype *dt, int *ndim, int64_t shape[3]) {
  int is_float = 0;
  if (c < 1 || c > 4)
    return trl_fail(TRL_ESHAPE, "transforms: images must have 1 to 4 channels, got %d", c);
  for (int i = 0; i < n; i++) {
    const trl_pipe_op *o = &ops[i];
    if ((unsigned)o->kind >= TRL_PIPE_NKINDS)
      return trl_fail(TRL_EARG, "transforms: unknown op %d at position %d", o->kind, i + 1);
    const char *op = kind_titles[o->kind];
    if (o->kind < TRL_PIPE_TO_TENSOR && is_float)
      return trl_fail(TRL_ETYPE, "%s: expects a uint8 (H,W,C) image, but it comes after "
                      "ToTensor (position %d)", op, i + 1);
    switch (o->kind) {
      case TRL_PIPE_RESIZE:
        if (o->w <= 0) return trl_fail(TRL_EARG, "%s: size must be positive, got %d", op, o->w);
        if (o->h > 0) w = o->w, h = o->h;
        else w = h = -1;
        break;
      case TRL_PIPE_CENTER_CROP: case TRL_PIPE_RANDOM_RESIZED_CROP:
        if (o->w <= 0 || o->h <= 0)
          return trl_fail(TRL_EARG, "%s: size must be positive, got %dx%d", op, o->w, o->h);
        if (o->kind == TRL_PIPE_RANDOM_RESIZED_CROP &&
            !(o->f[0] > 0 && o->f[0] <= o->f[1] && o->f[2] > 0 && o->f[2] <= o->f[3]))
          return trl_fail(TRL_EARG, "%s: bad scale (%g, %g) or ratio (%g, %g)", op,
                          o->f[0], o->f[1], o->f[2], o->f[3]);
        w = o->w, h = o->h;
        break;
      case TRL_PIPE_TO_TENSOR:
        if (is_float) return trl_fail(TRL_ETYPE, "ToTensor: applied twice (position %d)", i + 1);
        is_float = 1;
        break;
      case TRL_PIPE_NORMALIZE:
        if (!is_float)
          return trl_fail(TRL_ETYPE, "Normalize: expects a float32 (C,H,W) tensor; put "
                          "ToTensor before it (position %d)", i + 1);
        if (o->n != 1 && o->n != c)
          return trl_fail(TRL_ESHAPE, "Normalize: mean/std have %d values for %d channels",
                          o->n, c);
        for (int j = 0; j < o->n; j++)
          if (o->f[4 + j] == 0) return trl_fail(TRL_EARG, "Normalize: std[%d] is 0", j + 1);
        break;
      default: break;
    }
  }
  *dt = is_float ? TRL_F32 : TRL_U8;
  *ndim = 3;
  if (is_float) shape[0] = c, shape[1] = h, shape[2] = w;
  else shape[0] = h, shape[1] = w, shape[2] = c;
  return TRL_OK;
}

// ToTensor / Normalize on a float32 tensor (the Lua path after a Cast, or Normalize alone).
static trl_status apply_f32 (trl_tensor **out, const trl_pipe_op *ops, int n, trl_tensor *x) {
  char sh[TRL_SHAPELEN];
  trl_tensor *cur;
  TRL_TRY(trl_tensor_contiguous(&cur, x));
  for (int i = 0; i < n; i++) {
    const trl_pipe_op *o = &ops[i];
    trl_tensor *next = NULL;
    trl_status st = TRL_OK;
    if (o->kind == TRL_PIPE_TO_TENSOR && cur->ndim == 3 && cur->shape[2] <= 4) {
      int64_t shape[3] = { cur->shape[2], cur->shape[0], cur->shape[1] };
      if ((st = trl_tensor_empty(&next, TRL_F32, 3, shape)) == TRL_OK)
        trl_to_tensor_f32(trl_f32(cur), (int)shape[1], (int)shape[2], (int)shape[0],
                          trl_f32(next));
    } else if (o->kind == TRL_PIPE_NORMALIZE && (cur->ndim == 3 || cur->ndim == 4)) {
      int c = (int)cur->shape[cur->ndim - 3];
      if (o->n != 1 && o->n != c)
        st = trl_fail(TRL_ESHAPE, "Normalize: mean/std have %d values, tensor is %s", o->n,
                      trl_tensor_shape_str(sh, cur));
      else if ((st = trl_tensor_clone(&next, cur, TRL_F32)) == TRL_OK)
        trl_normalize_f32(trl_f32(next), cur->ndim == 4 ? (int)cur->shape[0] : 1, c,
                          cur->shape[cur->ndim - 2] * cur->shape[cur->ndim - 1],
                          o->f, o->f + 4, o->n);
    } else {
      st = trl_fail(TRL_ESHAPE, "%s: expects %s, got float32 %s", kind_titles[o->kind],
                    o->kind == TRL_PIPE_TO_TENSOR ? "an (H,W,C) image" :
                    o->kind == TRL_PIPE_NORMALIZE ? "a (C,H,W) or (N,C,H,W) tensor" :
                    "a uint8 (H,W,C) image", trl_tensor_shape_str(sh, cur));
    }
    trl_tensor_release(cur);
    if (st != TRL_OK) return st;
    cur = next;
  }
  *out = cur;
  return TRL_OK;
}

trl_status trl_pipe_apply (trl_tensor **out, const trl_pipe_op *ops, int n, trl_tensor *x,
                           trl_rng *r) {
  char sh[TRL_SHAPELEN];
  if (x->dtype == TRL_F32) return apply_f32(out, ops, n, x);
  const char *op = n > 0 ? kind_titles[ops[0].kind < TRL_PIPE_NKINDS ? ops[0].kind : 0]
                         : "transforms";
  if (x->dtype != TRL_U8 || x->ndim != 3 || x->shape[2] < 1 || x->shape[2] > 4 ||
      x->shape[0] < 1 || x->shape[1] < 1)
    return trl_fail(TRL_ESHAPE, "%s: expects a uint8 (H,W,C) image with 1 to 4 channels, "
                    "got %s %s", op, trl_dtype_name(x->dtype), trl_tensor_shape_str(sh, x));
  trl_dtype dt;
  int ndim;
  int64_t shape[3];
  TRL_TRY(trl_pipe_check(ops, n, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                         &dt, &ndim, shape));
  trl_tensor *src;
  TRL_TRY(trl_tensor_contiguous(&src, x));
  scratch sc = { 0 };
  img im = { trl_data(src), (int)x->shape[0], (int)x->shape[1], (int)x->shape[2], -1,
             (ptrdiff_t)x->shape[1] * x->shape[2] };
  int stop;
  trl_status st = run_u8(&sc, ops, n, &im, r, &stop);
  if (st == TRL_OK && stop < n) st = own(&sc, &im, "ToTensor");   // emit needs contiguous
  if (st == TRL_OK) {
    int64_t fs[3] = { im.h, im.w, im.c };
    if (stop < n) fs[0] = im.c, fs[1] = im.h, fs[2] = im.w;
    st = trl_tensor_empty(out, stop < n ? TRL_F32 : TRL_U8, 3, fs);
    if (st == TRL_OK) emit(&im, ops, stop, n, trl_data(*out));
  }
  scratch_free(&sc);
  trl_tensor_release(src);
  return st;
}

/* }================================================================== */

/* {==================================================================
** The loader
** =================================================================== */

typedef struct slot {
  int64_t batch;               // batch held, -1 when free
  int remaining;               // samples not finished yet
  trl_tensor *data, *label;
  trl_status st;               // first failure (lowest sample) of this batch
  int64_t err_k;
  char msg[TRL_MSGLEN];
} slot;

struct trl_loader {
  int64_t n_items;
  char **paths;
  int64_t *labels;
  int flag;
  trl_pipe_op *ops;
  int n_ops;
  trl_dtype dt;                // one sample: dt, shape[0..3)
  int64_t shape[3];
  int num_workers, prefetch;
  // the epoch
  int64_t *order, n, n_batches, next_batch;
  int bs, running;
  uint64_t seed, epoch;
  pthread_mutex_t mu;
  pthread_cond_t ready, space;
  int64_t next_k, consumed, fail_batch;
  int stop;
  slot *ring;
  pthread_t *th;
  int n_threads;
  scratch sc;                  // for num_workers = 0
};

static int64_t batch_len (const trl_loader *ld, int64_t b) {
  int64_t left = ld->n - b * ld->bs;
  return left < ld->bs ? left : ld->bs;
}

// New batch tensors for batch b, labels filled.
static trl_status alloc_batch (trl_loader *ld, int64_t b, trl_tensor **data, trl_tensor **label) {
  int64_t nb = batch_len(ld, b);
  int64_t shape[4] = { nb, ld->shape[0], ld->shape[1], ld->shape[2] };
  *data = *label = NULL;
  trl_status st = trl_tensor_empty(data, ld->dt, 4, shape);
  if (st == TRL_OK) st = trl_tensor_empty(label, TRL_I64, 1, shape);
  if (st != TRL_OK) {
    trl_tensor_release(*data);
    *data = NULL;
    return st;
  }
  int64_t *lab = trl_data(*label);
  for (int64_t j = 0; j < nb; j++) lab[j] = ld->labels[ld->order[b * ld->bs + j]];
  return TRL_OK;
}

// Read, decode and transform sample k of the epoch into row j of 'data'.
static trl_status load_sample (trl_loader *ld, scratch *sc, int64_t k, trl_tensor *data,
                               int64_t j) {
  int64_t idx = ld->order[k];
  const char *path = ld->paths[idx];
  trl_rng r;
  trl_pipe_sample_rng(&r, ld->seed, ld->epoch, (uint64_t)idx);
  trl_tensor *x = NULL;
  trl_status st = trl_image_read(&x, path, ld->flag);
  if (st != TRL_OK) {
    if (!strstr(trl_errmsg(), path)) {
      char msg[TRL_MSGLEN];
      snprintf(msg, sizeof msg, "%s", trl_errmsg());
      trl_fail(st, "%s: %s", path, msg);
    }
    return st;
  }
  char sh[TRL_SHAPELEN];
  int c = (int)ld->shape[ld->dt == TRL_F32 ? 0 : 2];
  if (x->dtype != TRL_U8 || x->ndim != 3 || x->shape[2] != c || !trl_is_contiguous(x)) {
    st = trl_fail(TRL_EFORMAT, "%s: decoded to %s %s, expected (H,W,%d) uint8", path,
                  trl_dtype_name(x->dtype), trl_tensor_shape_str(sh, x), c);
    trl_tensor_release(x);
    return st;
  }
  img im = { trl_data(x), (int)x->shape[0], (int)x->shape[1], c, -1,
             (ptrdiff_t)x->shape[1] * c };
  int stop;
  st = run_u8(sc, ld->ops, ld->n_ops, &im, &r, &stop);
  if (st == TRL_OK && stop < ld->n_ops) st = own(sc, &im, "ToTensor");
  if (st == TRL_OK) {
    int64_t got[3] = { im.h, im.w, im.c };
    if (stop < ld->n_ops) got[0] = im.c, got[1] = im.h, got[2] = im.w;
    if (memcmp(got, ld->shape, sizeof got) != 0) {
      char s2[TRL_SHAPELEN];
      st = trl_fail(TRL_ESHAPE, "%s: transformed to %s, but the batch holds %s", path,
                    trl_shape_str(sh, got, 3), trl_shape_str(s2, ld->shape, 3));
    } else {
      size_t row = (size_t)(got[0] * got[1] * got[2]) * trl_dtype_size(ld->dt);
      emit(&im, ld->ops, stop, ld->n_ops, (char *)trl_data(data) + row * j);
    }
  }
  trl_tensor_release(x);
  return st;
}

static void *worker (void *arg) {
  trl_loader *ld = arg;
  scratch sc = { 0 };
  pthread_mutex_lock(&ld->mu);
  for (;;) {
    while (!ld->stop && ld->next_k < ld->n && ld->next_k / ld->bs <= ld->fail_batch &&
           ld->next_k / ld->bs >= ld->consumed + ld->prefetch)
      pthread_cond_wait(&ld->space, &ld->mu);
    if (ld->stop || ld->next_k >= ld->n || ld->next_k / ld->bs > ld->fail_batch) break;
    int64_t k = ld->next_k++, b = k / ld->bs;
    slot *s = &ld->ring[b % ld->prefetch];
    if (s->batch != b) {                               // first sample of the batch
      s->batch = b;
      s->remaining = (int)batch_len(ld, b);
      s->st = alloc_batch(ld, b, &s->data, &s->label);
      s->err_k = s->st == TRL_OK ? INT64_MAX : -1;
      if (s->st != TRL_OK) {
        snprintf(s->msg, sizeof s->msg, "%s", trl_errmsg());
        if (b < ld->fail_batch) ld->fail_batch = b;
      }
    }
    trl_tensor *data = s->data;
    pthread_mutex_unlock(&ld->mu);
    trl_status st = data ? load_sample(ld, &sc, k, data, k - b * ld->bs) : TRL_OK;
    pthread_mutex_lock(&ld->mu);
    if (st != TRL_OK && k < s->err_k) {
      s->st = st, s->err_k = k;
      snprintf(s->msg, sizeof s->msg, "%s", trl_errmsg());
      if (b < ld->fail_batch) ld->fail_batch = b;
    }
    if (--s->remaining == 0) pthread_cond_broadcast(&ld->ready);
  }
  pthread_mutex_unlock(&ld->mu);
  scratch_free(&sc);
  return NULL;
}

trl_status trl_loader_new (trl_loader **out, int64_t n_items, const char *const *paths,
                           const int64_t *labels, int flag, const trl_pipe_op *ops, int n_ops,
                           int num_workers, int prefetch) {
  int ndim;
  trl_loader *ld;
  if (n_items < 0 || num_workers < 0)
    return trl_fail(TRL_EARG, "DataLoader: bad item count %lld or num_workers %d",
                    (long long)n_items, num_workers);
  if ((ld = calloc(1, sizeof *ld)) == NULL)
    return trl_fail(TRL_ENOMEM, "DataLoader: out of memory");
  trl_status st = trl_pipe_check(ops, n_ops, -1, -1, flag ? 3 : 1, &ld->dt, &ndim, ld->shape);
  if (st == TRL_OK && (ld->shape[0] < 0 || ld->shape[1] < 0 || ld->shape[2] < 0))
    st = trl_fail(TRL_ESHAPE, "DataLoader: the transforms do not give one image size (end "
                  "with Resize(size), CenterCrop or RandomResizedCrop)");
  ld->n_items = n_items, ld->flag = flag, ld->n_ops = n_ops;
  ld->num_workers = num_workers;
  ld->prefetch = prefetch > 0 ? prefetch : (num_workers > 0 ? 2 * num_workers : 1);
  ld->paths = calloc((size_t)n_items + 1, sizeof(char *));
  ld->labels = malloc(((size_t)n_items + 1) * sizeof(int64_t));
  ld->ops = malloc(((size_t)n_ops + 1) * sizeof(trl_pipe_op));
  ld->ring = calloc((size_t)ld->prefetch, sizeof(slot));
  ld->th = calloc((size_t)num_workers + 1, sizeof(pthread_t));
  pthread_mutex_init(&ld->mu, NULL);
  pthread_cond_init(&ld->ready, NULL);
  pthread_cond_init(&ld->space, NULL);
  if (st == TRL_OK && (!ld->paths || !ld->labels || !ld->ops || !ld->ring || !ld->th))
    st = trl_fail(TRL_ENOMEM, "DataLoader: out of memory for %lld items", (long long)n_items);
  for (int64_t i = 0; st == TRL_OK && i < n_items; i++)
    if ((ld->paths[i] = strdup(paths[i])) == NULL)
      st = trl_fail(TRL_ENOMEM, "DataLoader: out of memory");
  if (st != TRL_OK) {
    trl_loader_free(ld);
    return st;
  }
  memcpy(ld->labels, labels, (size_t)n_items * sizeof(int64_t));
  if (n_ops) memcpy(ld->ops, ops, (size_t)n_ops * sizeof(trl_pipe_op));
  *out = ld;
  return TRL_OK;
}

void trl_loader_stop (trl_loader *ld) {
  if (!ld->running) return;
  pthread_mutex_lock(&ld->mu);
  ld->stop = 1;
  pthread_cond_broadcast(&ld->space);
  pthread_mutex_unlock(&ld->mu);
  for (int i = 0; i < ld->n_threads; i++) pthread_join(ld->th[i], NULL);
  ld->n_threads = 0;
  for (int i = 0; i < ld->prefetch; i++) {
    slot *s = &ld->ring[i];
    trl_tensor_release(s->data);
    trl_tensor_release(s->label);
    s->data = s->label = NULL;
    s->batch = -1;
  }
  free(ld->order);
  ld->order = NULL;
  ld->running = 0;
}

trl_status trl_loader_start (trl_loader *ld, const int64_t *order, int64_t n, int batch_size,
                             uint64_t seed, uint64_t epoch) {
  trl_loader_stop(ld);
  if (batch_size < 1)
    return trl_fail(TRL_EARG, "DataLoader: batch_size must be positive, got %d", batch_size);
  for (int64_t i = 0; i < n; i++)
    if (order[i] < 0 || order[i] >= ld->n_items)
      return trl_fail(TRL_EARG, "DataLoader: sample index %lld out of range [0,%lld)",
                      (long long)order[i], (long long)ld->n_items);
  if ((ld->order = malloc(((size_t)n + 1) * sizeof(int64_t))) == NULL)
    return trl_fail(TRL_ENOMEM, "DataLoader: out of memory");
  if (n) memcpy(ld->order, order, (size_t)n * sizeof(int64_t));
  ld->n = n, ld->bs = batch_size, ld->n_batches = (n + batch_size - 1) / batch_size;
  ld->seed = seed, ld->epoch = epoch;
  ld->next_batch = ld->next_k = ld->consumed = 0;
  ld->fail_batch = INT64_MAX;
  ld->stop = 0;
  ld->running = 1;
  for (int i = 0; i < ld->prefetch; i++) ld->ring[i].batch = -1;
  int want = ld->num_workers;
  if (want > ld->n) want = (int)ld->n;                 // no idle threads for tiny epochs
  for (int i = 0; i < want; i++) {
    if (pthread_create(&ld->th[i], NULL, worker, ld) != 0) {
      trl_loader_stop(ld);
      return trl_fail(TRL_ENOMEM, "DataLoader: cannot start worker thread %d", i + 1);
    }
    ld->n_threads++;
  }
  return TRL_OK;
}

trl_status trl_loader_next (trl_loader *ld, trl_tensor **data, trl_tensor **label) {
  *data = *label = NULL;
  if (!ld->running || ld->next_batch >= ld->n_batches) return TRL_OK;
  int64_t b = ld->next_batch++;
  if (ld->num_workers == 0) {
    trl_status st = alloc_batch(ld, b, data, label);
    for (int64_t j = 0; st == TRL_OK && j < batch_len(ld, b); j++)
      st = load_sample(ld, &ld->sc, b * ld->bs + j, *data, j);
    if (st != TRL_OK) {
      trl_tensor_release(*data);
      trl_tensor_release(*label);
      *data = *label = NULL;
      ld->next_batch = ld->n_batches;                  // the epoch ends with the error
    }
    return st;
  }
  slot *s = &ld->ring[b % ld->prefetch];
  pthread_mutex_lock(&ld->mu);
  while (!(s->batch == b && s->remaining == 0)) pthread_cond_wait(&ld->ready, &ld->mu);
  trl_status st = s->st;
  char msg[TRL_MSGLEN];
  if (st != TRL_OK) memcpy(msg, s->msg, sizeof msg);
  *data = s->data, *label = s->label;
  s->data = s->label = NULL;
  s->batch = -1;
  ld->consumed++;
  pthread_cond_broadcast(&ld->space);
  pthread_mutex_unlock(&ld->mu);
  if (st != TRL_OK) {
    trl_tensor_release(*data);
    trl_tensor_release(*label);
    *data = *label = NULL;
    ld->next_batch = ld->n_batches;
    return trl_fail(st, "%s", msg);
  }
  return TRL_OK;
}

void trl_loader_free (trl_loader *ld) {
  if (ld == NULL) return;
  trl_loader_stop(ld);
  scratch_free(&ld->sc);
  if (ld->paths)
    for (int64_t i = 0; i < ld->n_items; i++) free(ld->paths[i]);
  free(ld->paths);
  free(ld->labels);
  free(ld->ops);
  free(ld->ring);
  free(ld->th);
  pthread_mutex_destroy(&ld->mu);
  pthread_cond_destroy(&ld->ready);
  pthread_cond_destroy(&ld->space);
  free(ld);
}

int trl_loader_nthreads (const trl_loader *ld) {
  return ld->n_threads;
}

/* }================================================================== */
