/*
** test_imgproc.c: the transform kernels (resize vs a float reference, crop/flip exactness,
** ToTensor+Normalize and the jitters by hand), RandomResizedCrop's box statistics, and the
** batch loader: 0 vs 2 workers bit for bit, error propagation, no thread or tensor leaks.
*/
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "imgproc.h"
#include "pipeline.h"

static int failures = 0;

#define CHECK(c) do { if (!(c)) { \
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)
#define CHECK_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); if (a_ != b_) { \
  fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
  failures++; } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); if (fabs(a_ - b_) > (tol)) { \
  fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, a_, b_); \
  failures++; } } while (0)
#define CHECK_OK(e) do { trl_status s_ = (e); if (s_ != TRL_OK) { \
  fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #e, trl_errmsg()); \
  failures++; } } while (0)

static uint8_t *random_image (trl_rng *r, int h, int w, int c) {
  uint8_t *p = malloc((size_t)h * w * c);
  for (size_t i = 0; i < (size_t)h * w * c; i++) p[i] = (uint8_t)(trl_rng_next(r) >> 56);
  return p;
}

/* {==================================================================
** Kernels
** =================================================================== */

static void test_resize (void) {
  // by hand: [0,255] -> 4 columns, OpenCV gives 0, 64, 191, 255 (63.75 and 191.25 rounded)
  uint8_t two[2] = { 0, 255 }, four[4];
  int ws[64];                                   // >= trl_resize_ws_size(9, 1)
  trl_resize_u8(two, 1, 2, 2, four, 1, 4, 1, ws);
  CHECK_EQ(four[0], 0); CHECK_EQ(four[1], 64); CHECK_EQ(four[2], 191); CHECK_EQ(four[3], 255);
  // golden values from OpenCV 4.6 cv2.resize(INTER_LINEAR) (6,7) -> (4,9) and (11,3)
  uint8_t g[42], o1[36], o2[33];
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 7; x++)
      g[y * 7 + x] = (uint8_t)((y * 37 + x * 59 + (x * y) % 13 * 11) % 256);
  static const uint8_t cv1[36] = { 9, 50, 98, 146, 195, 193, 120, 83, 124, 65, 117, 178, 196, 108,
    119, 165, 162, 86, 120, 183, 143, 75, 149, 194, 165, 98, 34, 176, 122, 116, 143, 146, 205,
    141, 78, 81 };
  static const uint8_t cv2[33] = { 39, 177, 59, 53, 199, 89, 78, 237, 141, 102, 171, 158, 126, 69,
    164, 150, 96, 141, 174, 134, 114, 199, 172, 73, 199, 191, 49, 130, 151, 75, 90, 128, 90 };
  trl_resize_u8(g, 6, 7, 7, o1, 4, 9, 1, ws);
  trl_resize_u8(g, 6, 7, 7, o2, 11, 3, 1, ws);
  CHECK(memcmp(o1, cv1, sizeof cv1) == 0);
  CHECK(memcmp(o2, cv2, sizeof cv2) == 0);
  // odd sizes, up and down, 1 and 3 channels, strided source: within 1 of the float reference
  static const int sizes[][4] = { { 7, 5, 13, 11 }, { 13, 17, 5, 3 }, { 31, 9, 224, 224 },
    { 5, 40, 9, 7 }, { 1, 7, 3, 5 }, { 50, 33, 17, 49 }, { 300, 211, 224, 224 }, { 9, 9, 9, 9 } };
  trl_rng r;
  trl_rng_seed(&r, 1);
  for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++)
    for (int c = 1; c <= 3; c += 2) {
      int sh = sizes[t][0], sw = sizes[t][1], dh = sizes[t][2], dw = sizes[t][3];
      uint8_t *src = random_image(&r, sh, sw + 3, c);       // 3 extra columns: a stride
      uint8_t *a = malloc((size_t)dh * dw * c), *b = malloc((size_t)dh * dw * c);
      void *wsp = malloc(trl_resize_ws_size(dw, c));
      trl_resize_u8(src + c, sh, sw, (ptrdiff_t)(sw + 3) * c, a, dh, dw, c, wsp);
      trl_resize_u8_ref(src + c, sh, sw, (ptrdiff_t)(sw + 3) * c, b, dh, dw, c);
      int maxd = 0;
      for (size_t i = 0; i < (size_t)dh * dw * c; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > maxd) maxd = d;
      }
      if (maxd > 1) fprintf(stderr, "resize %dx%d -> %dx%d c=%d: max diff %d\n", sh, sw, dh, dw,
                            c, maxd);
      CHECK(maxd <= 1);
      if (sh == dh && sw == dw)                              // identity is exact
        for (int y = 0; y < sh; y++)
          CHECK(memcmp(a + (size_t)y * dw * c, src + c + (size_t)y * (sw + 3) * c,
                       (size_t)dw * c) == 0);
      free(src); free(a); free(b); free(wsp);
    }
}

static void test_crop_flip (void) {
  uint8_t img[3 * 4 * 2], out[2 * 2 * 2];
  for (int i = 0; i < 24; i++) img[i] = (uint8_t)i;         // (3,4,2): pixel (y,x) = 8y+2x
  trl_crop_u8(img, 8, 1, 1, 2, 2, 2, out);
  static const uint8_t want[8] = { 10, 11, 12, 13, 18, 19, 20, 21 };
  CHECK(memcmp(out, want, 8) == 0);
  uint8_t f[24];
  memcpy(f, img, 24);
  trl_flip_lr_u8(f, 3, 4, 2);
  CHECK_EQ(f[0], 6); CHECK_EQ(f[1], 7); CHECK_EQ(f[6], 0); CHECK_EQ(f[8], 14);
  trl_flip_lr_u8(f, 3, 4, 2);
  CHECK(memcmp(f, img, 24) == 0);
  trl_flip_tb_u8(f, 3, 4, 2);
  CHECK_EQ(f[0], 16); CHECK_EQ(f[8], 8); CHECK_EQ(f[16], 0);
  trl_flip_tb_u8(f, 3, 4, 2);
  CHECK(memcmp(f, img, 24) == 0);
}

static void test_to_tensor (void) {
  uint8_t px[6] = { 10, 128, 255, 0, 51, 102 };              // (1,2,3)
  float out[6];
  const float mean[3] = { 0.5f, 0.5f, 0.5f }, std[3] = { 0.25f, 0.5f, 1.f };
  trl_to_tensor_u8(px, 1, 2, 3, NULL, NULL, 0, out);
  CHECK_NEAR(out[0], 10 / 255.0, 1e-7); CHECK_NEAR(out[1], 0, 0);   // CHW: R of both pixels
  CHECK_NEAR(out[2], 128 / 255.0, 1e-7); CHECK_NEAR(out[3], 0.2, 1e-7);
  CHECK_NEAR(out[5], 0.4, 1e-7);
  trl_to_tensor_u8(px, 1, 2, 3, mean, std, 3, out);
  CHECK_NEAR(out[0], (10 / 255.0 - 0.5) / 0.25, 1e-6);
  CHECK_NEAR(out[1], -2.0, 1e-6);
  CHECK_NEAR(out[3], (0.2 - 0.5) / 0.5, 1e-6);
  CHECK_NEAR(out[4], 0.5, 1e-6);
  CHECK_NEAR(out[5], -0.1, 1e-6);
  // bit for bit the same as ToTensor then Normalize
  float a[6];
  trl_to_tensor_u8(px, 1, 2, 3, NULL, NULL, 0, a);
  trl_normalize_f32(a, 1, 3, 2, mean, std, 3);
  CHECK(memcmp(a, out, sizeof a) == 0);
}

static void test_jitter (void) {
  uint8_t b[4] = { 100, 200, 101, 0 };
  trl_brightness_u8(b, 2, 1.5f);
  CHECK_EQ(b[0], 150); CHECK_EQ(b[1], 255);
  trl_brightness_u8(b + 2, 2, 0.5f);
  CHECK_EQ(b[2], 50); CHECK_EQ(b[3], 0);                    // 50.5 truncates
  // contrast 0: every channel becomes the mean gray (0.299*R + 0.587*G + 0.114*B averaged)
  uint8_t c[6] = { 255, 0, 0, 0, 255, 0 };
  trl_contrast_u8(c, 1, 2, 3, 0.f);
  for (int i = 0; i < 6; i++) CHECK_EQ(c[i], 112);          // (76.245 + 149.685) / 2
  // saturation 0: the pixel's gray; 1: unchanged
  uint8_t s[3] = { 200, 100, 50 }, s1[3] = { 200, 100, 50 };
  trl_saturation_u8(s, 1, 1, 3, 0.f);
  for (int i = 0; i < 3; i++) CHECK_EQ(s[i], 124);          // 59.8 + 58.7 + 5.7 = 124.2
  trl_saturation_u8(s1, 1, 1, 3, 1.f);
  CHECK_EQ(s1[0], 200); CHECK_EQ(s1[1], 100); CHECK_EQ(s1[2], 50);
  // hue: red turned by 1/3 turn is green; a full turn changes at most 1 (truncation)
  uint8_t h[6] = { 255, 0, 0, 30, 140, 220 };
  trl_hue_u8(h, 1, 1, 3, 1.f / 3.f);
  CHECK(h[0] <= 1 && h[1] >= 254 && h[2] <= 1);
  trl_hue_u8(h + 3, 1, 1, 3, 1.f);
  CHECK(abs(h[3] - 30) <= 1 && abs(h[4] - 140) <= 1 && abs(h[5] - 220) <= 1);
  // lighting: alpha (1,0,0) adds eigval[0] * eigvec[:,0] = (-31.47, -32.21, -32.37)
  uint8_t l[3] = { 100, 100, 100 };
  const float a[3] = { 1.f, 0.f, 0.f }, z[3] = { 0, 0, 0 };
  trl_lighting_u8(l, 1, 1, 3, z);
  CHECK_EQ(l[0], 100);
  trl_lighting_u8(l, 1, 1, 3, a);
  CHECK_EQ(l[0], 68); CHECK_EQ(l[1], 67); CHECK_EQ(l[2], 67);
}

/* }================================================================== */

/* {==================================================================
** RandomResizedCrop boxes and chains
** =================================================================== */

static void test_rrc_box (void) {
  trl_rng r;
  trl_rng_seed(&r, 42);
  const float f[4] = { 0.08f, 1.f, 3.f / 4.f, 4.f / 3.f };
  int fell = 0, n = 20000;
  double amin = 9, amax = 0, rmin = 9, rmax = 0;
  for (int i = 0; i < n; i++) {
    int w = 100 + i % 237, h = 80 + (i * 7) % 251, box[4];
    if (!trl_pipe_rrc_box(&r, w, h, 224, 224, f, box)) { fell++; continue; }
    CHECK(box[0] >= 0 && box[1] >= 0 && box[0] + box[2] <= w && box[1] + box[3] <= h);
    // before rounding, area and ratio are in range; rounding moves w, h by <= 0.5
    double area = (double)box[2] * box[3] / ((double)w * h);
    double lo = (box[2] - 0.5) * (box[3] - 0.5) / ((double)w * h);
    double hi = (box[2] + 0.5) * (box[3] + 0.5) / ((double)w * h);
    CHECK(hi >= 0.08 && lo <= 1.0);
    double ratio = (double)box[2] / box[3];
    double rlo = (box[2] - 0.5) / (box[3] + 0.5), rhi = (box[2] + 0.5) / (box[3] - 0.5);
    CHECK(rhi >= 0.75 && rlo <= 4.0 / 3.0);
    if (area < amin) amin = area;
    if (area > amax) amax = area;
    if (ratio < rmin) rmin = ratio;
    if (ratio > rmax) rmax = ratio;
  }
  CHECK(fell < n / 100);                                   // 10 attempts rarely all fail
  CHECK(amin < 0.1 && amax > 0.95 && rmin < 0.8 && rmax > 1.25);
  // impossible ratio: the centre crop of the output's shape
  const float bad[4] = { 0.9f, 1.f, 3.f, 4.f };
  int box[4];
  CHECK_EQ(trl_pipe_rrc_box(&r, 100, 60, 224, 224, bad, box), 0);
  CHECK_EQ(box[0], 20); CHECK_EQ(box[1], 0); CHECK_EQ(box[2], 60); CHECK_EQ(box[3], 60);
}

static void test_apply (void) {
  trl_rng r;
  trl_rng_seed(&r, 3);
  int64_t shape[3] = { 37, 53, 3 };
  trl_tensor *x, *y = NULL;
  CHECK_OK(trl_tensor_empty(&x, TRL_U8, 3, shape));
  uint8_t *src = random_image(&r, 37, 53, 3);
  memcpy(trl_data(x), src, 37 * 53 * 3);
  // Resize(20x30) alone equals the kernel; input untouched by a flip
  trl_pipe_op ops[4] = { { .kind = TRL_PIPE_RESIZE, .w = 20, .h = 30 } };
  CHECK_OK(trl_pipe_apply(&y, ops, 1, x, &r));
  if (y) {
    CHECK_EQ(y->shape[0], 30); CHECK_EQ(y->shape[1], 20); CHECK_EQ(y->shape[2], 3);
    uint8_t *want = malloc(30 * 20 * 3);
    void *ws = malloc(trl_resize_ws_size(20, 3));
    trl_resize_u8(src, 37, 53, 53 * 3, want, 30, 20, 3, ws);
    CHECK(memcmp(want, trl_data(y), 30 * 20 * 3) == 0);
    free(want); free(ws);
    trl_tensor_release(y);
  }
  ops[0] = (trl_pipe_op){ .kind = TRL_PIPE_FLIP_LR };
  CHECK_OK(trl_pipe_apply(&y, ops, 1, x, &r));
  CHECK(memcmp(trl_data(x), src, 37 * 53 * 3) == 0);
  if (y) {
    CHECK_EQ(((uint8_t *)trl_data(y))[0], src[52 * 3]);
    trl_tensor_release(y);
  }
  // Resize(keep_ratio) 16: short side 16, long side floor(53*16/37) = 22
  ops[0] = (trl_pipe_op){ .kind = TRL_PIPE_RESIZE, .w = 16, .h = 0 };
  ops[1] = (trl_pipe_op){ .kind = TRL_PIPE_TO_TENSOR };
  ops[2] = (trl_pipe_op){ .kind = TRL_PIPE_NORMALIZE, .n = 1, .f = { 0.5f, 0, 0, 0, 2.f } };
  CHECK_OK(trl_pipe_apply(&y, ops, 3, x, &r));
  if (y) {
    CHECK_EQ(y->dtype, TRL_F32);
    CHECK_EQ(y->shape[0], 3); CHECK_EQ(y->shape[1], 16); CHECK_EQ(y->shape[2], 22);
    trl_tensor_release(y);
  }
  // errors name the transform and the shape
  ops[0] = (trl_pipe_op){ .kind = TRL_PIPE_NORMALIZE, .n = 1, .f = { 0, 0, 0, 0, 1 } };
  CHECK(trl_pipe_apply(&y, ops, 1, x, &r) == TRL_ETYPE);
  CHECK(strstr(trl_errmsg(), "Normalize") && strstr(trl_errmsg(), "ToTensor"));
  trl_tensor *g;
  int64_t gs[2] = { 4, 4 };
  CHECK_OK(trl_tensor_zeros(&g, TRL_U8, 2, gs));
  ops[0] = (trl_pipe_op){ .kind = TRL_PIPE_RANDOM_FLIP_LR };
  CHECK(trl_pipe_apply(&y, ops, 1, g, &r) == TRL_ESHAPE);
  CHECK(strstr(trl_errmsg(), "RandomFlipLeftRight") && strstr(trl_errmsg(), "[4,4]"));
  trl_tensor_release(g);
  trl_tensor_release(x);
  free(src);
}

/* }================================================================== */

/* {==================================================================
** Loader
** =================================================================== */

static int count_threads (void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

// count_threads once it equals 'want', or after a second. pthread_join returns when the
// thread's id is released, which the kernel does before it takes the thread out of
// /proc/self/task: a joined worker can still be listed for a moment.
static int threads_settled (int want) {
  int n = count_threads();
  for (int i = 0; i < 200 && n != want; i++) {
    nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
    n = count_threads();
  }
  return n;
}

// Epoch of 'order' through a loader with 'workers' threads; all batches concatenated.
static float *run_epoch (char **paths, int64_t *labels, int n, const int64_t *order, int m,
                         int workers, int64_t *lab_out, int *nbatch) {
  trl_pipe_op ops[] = {
    { .kind = TRL_PIPE_RANDOM_RESIZED_CROP, .w = 24, .h = 20, .f = { 0.08f, 1, 0.75f, 4 / 3.f } },
    { .kind = TRL_PIPE_RANDOM_FLIP_LR },
    { .kind = TRL_PIPE_COLOR_JITTER, .f = { .4f, .4f, .4f, .1f } },
    { .kind = TRL_PIPE_LIGHTING, .f = { 0.1f } }, { .kind = TRL_PIPE_TO_TENSOR },
    { .kind = TRL_PIPE_NORMALIZE, .n = 3, .f = { .485f, .456f, .406f, 0, .229f, .224f, .225f } } };
  trl_loader *ld = NULL;
  float *all = malloc((size_t)m * 3 * 20 * 24 * sizeof(float));
  CHECK_OK(trl_loader_new(&ld, n, (const char *const *)paths, labels, 1, ops, 6, workers, 0));
  if (!ld) return all;
  CHECK_OK(trl_loader_start(ld, order, m, 3, 7, 1));
  CHECK_EQ(trl_loader_nthreads(ld), workers);
  int64_t got = 0;
  *nbatch = 0;
  for (;;) {
    trl_tensor *x, *y;
    CHECK_OK(trl_loader_next(ld, &x, &y));
    if (!x) break;
    CHECK_EQ(x->shape[1], 3); CHECK_EQ(x->shape[2], 20); CHECK_EQ(x->shape[3], 24);
    CHECK_EQ(x->shape[0], y->shape[0]);
    memcpy(all + got * 3 * 20 * 24, trl_data(x), trl_numel(x) * sizeof(float));
    memcpy(lab_out + got, trl_data(y), y->shape[0] * sizeof(int64_t));
    got += x->shape[0];
    (*nbatch)++;
    trl_tensor_release(x);
    trl_tensor_release(y);
  }
  CHECK_EQ(got, m);
  trl_loader_free(ld);
  return all;
}

static void test_loader (void) {
  const char *tmp = getenv("TRL_TEST_TMP");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/imgproc", tmp ? tmp : "/tmp");
  if (tmp) mkdir(tmp, 0755);
  mkdir(dir, 0755);
  enum { N = 7 };
  char *paths[N + 1];
  int64_t labels[N + 1];
  trl_rng r;
  trl_rng_seed(&r, 5);
  for (int i = 0; i < N; i++) {
    int h = 30 + 9 * i, w = 50 - 3 * i;
    int64_t shape[3] = { h, w, 3 };
    trl_tensor *x;
    CHECK_OK(trl_tensor_empty(&x, TRL_U8, 3, shape));
    uint8_t *p = random_image(&r, h, w, 3);
    memcpy(trl_data(x), p, (size_t)h * w * 3);
    free(p);
    paths[i] = malloc(600);
    snprintf(paths[i], 600, "%s/img%d.%s", dir, i, i % 2 ? "png" : "jpg");
    CHECK_OK(trl_image_write(x, paths[i], 90));
    trl_tensor_release(x);
    labels[i] = i % 2;
  }
  int64_t order[N] = { 3, 0, 6, 1, 5, 2, 4 };
  int64_t lab0[N], lab2[N];
  int nb0, nb2;
  long live = trl_tensor_live();
  int threads = count_threads();
  float *a = run_epoch(paths, labels, N, order, N, 0, lab0, &nb0);
  float *b = run_epoch(paths, labels, N, order, N, 2, lab2, &nb2);
  CHECK_EQ(nb0, 3); CHECK_EQ(nb2, 3);
  CHECK(memcmp(a, b, (size_t)N * 3 * 20 * 24 * sizeof(float)) == 0);   // bit for bit
  for (int i = 0; i < N; i++) { CHECK_EQ(lab0[i], order[i] % 2); CHECK_EQ(lab2[i], lab0[i]); }
  free(a); free(b);
  CHECK_EQ(threads_settled(threads), threads);
  CHECK_EQ(trl_tensor_live(), live);
  // a corrupt file in the second batch: the first batch arrives, then the error names it
  paths[N] = malloc(600);
  snprintf(paths[N], 600, "%s/corrupt.jpg", dir);
  FILE *f = fopen(paths[N], "wb");
  if (f) { fputs("\xff\xd8\xff\xe0 not really a jpeg", f); fclose(f); }
  labels[N] = 0;
  int64_t bad_order[] = { 0, 1, 2, 3, N, 4, 5 };
  for (int workers = 0; workers <= 3; workers += 3) {
    trl_pipe_op ops[] = { { .kind = TRL_PIPE_RESIZE, .w = 8, .h = 8 } };
    trl_loader *ld = NULL;
    CHECK_OK(trl_loader_new(&ld, N + 1, (const char *const *)paths, labels, 1, ops, 1, workers, 2));
    if (!ld) continue;
    CHECK_OK(trl_loader_start(ld, bad_order, 7, 4, 0, 0));
    trl_tensor *x, *y;
    CHECK_OK(trl_loader_next(ld, &x, &y));
    CHECK(x && x->dtype == TRL_U8 && x->shape[0] == 4 && x->shape[3] == 3);
    trl_tensor_release(x);
    trl_tensor_release(y);
    CHECK(trl_loader_next(ld, &x, &y) == TRL_EFORMAT);
    CHECK(strstr(trl_errmsg(), "corrupt.jpg") != NULL);
    CHECK(x == NULL && y == NULL);
    CHECK_OK(trl_loader_next(ld, &x, &y));                 // the epoch is over
    CHECK(x == NULL);
    // a new epoch works, and freeing mid-epoch joins the workers
    CHECK_OK(trl_loader_start(ld, order, N, 2, 0, 1));
    CHECK_OK(trl_loader_next(ld, &x, &y));
    CHECK(x != NULL);
    trl_tensor_release(x);
    trl_tensor_release(y);
    trl_loader_free(ld);
  }
  CHECK_EQ(threads_settled(threads), threads);
  CHECK_EQ(trl_tensor_live(), live);
  // a chain without a fixed size cannot batch
  trl_pipe_op keep[] = { { .kind = TRL_PIPE_RESIZE, .w = 8, .h = 0 } };
  trl_loader *ld = NULL;
  CHECK(trl_loader_new(&ld, N, (const char *const *)paths, labels, 1, keep, 1, 0, 0)
        == TRL_ESHAPE);
  CHECK(strstr(trl_errmsg(), "one image size") != NULL);
  for (int i = 0; i <= N; i++) { remove(paths[i]); free(paths[i]); }
  rmdir(dir);
}

/* }================================================================== */

int main (void) {
  test_resize();
  test_crop_flip();
  test_to_tensor();
  test_jitter();
  test_rrc_box();
  test_apply();
  test_loader();
  if (failures) {
    fprintf(stderr, "test_imgproc: %d failures\n", failures);
    return 1;
  }
  printf("test_imgproc: ok\n");
  return 0;
}
