/*
** imgproc.c: uint8 HWC image kernels (resize, crop, flip, ToTensor/Normalize, color jitter)
** with the numerics of OpenCV's INTER_LINEAR and MXNet 1.x's image operators. No
** allocation, no errors, no randomness: pipeline.c draws the parameters.
*/
#include <math.h>
#include <string.h>

#include "imgproc.h"

#define COEF_BITS 11
#define COEF_ONE (1 << COEF_BITS)   // OpenCV's INTER_RESIZE_COEF_SCALE

static inline uint8_t sat_trunc (float v) {  // Gluon's saturate_cast<uint8_t>: clamp, truncate
  return (uint8_t)(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
}

/* {==================================================================
** Resize
** =================================================================== */

// OpenCV's source coordinate of destination pixel 'd': sx and the weight of sx+1.
static void src_coord (int d, double scale, int n_src, int *s, float *f) {
  float fx = (float)((d + 0.5) * scale - 0.5);
  int sx = (int)floorf(fx);
  fx -= (float)sx;
  if (sx < 0) fx = 0.f, sx = 0;
  if (sx >= n_src - 1) fx = 0.f, sx = n_src - 1;
  *s = sx;
  *f = fx;
}

size_t trl_resize_ws_size (int dw, int C) {
  // two horizontal rows of ints, then x offsets and two weights per column
  return (size_t)dw * ((size_t)2 * C + 3) * sizeof(int);
}

// One horizontally resized row: D[dx][c] = S[x0][c]*a0 + S[x1][c]*a1 (scale 2048).
static void hrow (const uint8_t *S, int *D, int dw, int C, const int *xofs, const int *alpha,
                  int sw) {
  if (C == 3) {
    for (int dx = 0; dx < dw; dx++) {
      const uint8_t *p = S + xofs[dx] * 3;
      const uint8_t *q = xofs[dx] + 1 < sw ? p + 3 : p;   // last column: weight is 0
      int a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
      D[3 * dx] = p[0] * a0 + q[0] * a1;
      D[3 * dx + 1] = p[1] * a0 + q[1] * a1;
      D[3 * dx + 2] = p[2] * a0 + q[2] * a1;
    }
    return;
  }
  for (int dx = 0; dx < dw; dx++) {
    const uint8_t *p = S + xofs[dx] * C;
    const uint8_t *q = xofs[dx] + 1 < sw ? p + C : p;
    int a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
    for (int c = 0; c < C; c++) D[C * dx + c] = p[c] * a0 + q[c] * a1;
  }
}

void trl_resize_u8 (const uint8_t *src, int sh, int sw, ptrdiff_t sstride,
                    uint8_t *dst, int dh, int dw, int C, void *ws) {
  int n = dw * C;
  int *rows[2] = { (int *)ws, (int *)ws + n };
  int *xofs = (int *)ws + 2 * n, *alpha = xofs + dw;
  int have[2] = { -1, -1 };                            // source row held by rows[i]
  double scale_x = 1. / ((double)dw / sw), scale_y = 1. / ((double)dh / sh);  // as OpenCV
  for (int dx = 0; dx < dw; dx++) {
    int sx; float fx;
    src_coord(dx, scale_x, sw, &sx, &fx);
    xofs[dx] = sx;
    alpha[2 * dx] = (int)lrintf((1.f - fx) * COEF_ONE);   // saturate_cast<short> rounds
    alpha[2 * dx + 1] = (int)lrintf(fx * COEF_ONE);
  }
  for (int dy = 0; dy < dh; dy++) {
    // unlike x, OpenCV keeps fy at the borders and clamps the two rows instead, so both
    // weights apply to the same row (two truncations in the vertical pass, not one)
    float fy = (float)((dy + 0.5) * scale_y - 0.5);
    int sy = (int)floorf(fy);
    fy -= (float)sy;
    int sy1 = sy + 1 < 0 ? 0 : sy + 1 >= sh ? sh - 1 : sy + 1;
    sy = sy < 0 ? 0 : sy >= sh ? sh - 1 : sy;
    int b0 = (int)lrintf((1.f - fy) * COEF_ONE), b1 = (int)lrintf(fy * COEF_ONE);
    int k0 = have[0] == sy ? 0 : have[1] == sy ? 1 : -1;
    if (k0 < 0) {                                      // keep the row that holds sy1
      k0 = have[0] == sy1 ? 1 : 0;
      hrow(src + (ptrdiff_t)sy * sstride, rows[k0], dw, C, xofs, alpha, sw);
      have[k0] = sy;
    }
    int k1 = have[k0] == sy1 ? k0 : have[k0 ^ 1] == sy1 ? k0 ^ 1 : -1;
    if (k1 < 0) {
      k1 = k0 ^ 1;
      hrow(src + (ptrdiff_t)sy1 * sstride, rows[k1], dw, C, xofs, alpha, sw);
      have[k1] = sy1;
    }
    uint8_t *D = dst + (size_t)dy * n;
    const int *r0 = rows[k0], *r1 = rows[k1];
    for (int i = 0; i < n; i++) {
      int v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
      v = (v + 2) >> 2;
      D[i] = (uint8_t)(v > 255 ? 255 : v);
    }
  }
}

void trl_resize_u8_ref (const uint8_t *src, int sh, int sw, ptrdiff_t sstride,
                        uint8_t *dst, int dh, int dw, int C) {
  double scale_x = (double)sw / dw, scale_y = (double)sh / dh;
  for (int dy = 0; dy < dh; dy++) {
    double fy = (dy + 0.5) * scale_y - 0.5;
    int y0 = (int)floor(fy);
    double wy = fy - y0;
    if (y0 < 0) y0 = 0, wy = 0;
    if (y0 >= sh - 1) y0 = sh - 1, wy = 0;
    int y1 = y0 + 1 < sh ? y0 + 1 : y0;
    for (int dx = 0; dx < dw; dx++) {
      double fx = (dx + 0.5) * scale_x - 0.5;
      int x0 = (int)floor(fx);
      double wx = fx - x0;
      if (x0 < 0) x0 = 0, wx = 0;
      if (x0 >= sw - 1) x0 = sw - 1, wx = 0;
      int x1 = x0 + 1 < sw ? x0 + 1 : x0;
      for (int c = 0; c < C; c++) {
        double v00 = src[y0 * sstride + x0 * C + c], v01 = src[y0 * sstride + x1 * C + c];
        double v10 = src[y1 * sstride + x0 * C + c], v11 = src[y1 * sstride + x1 * C + c];
        double v = (1 - wy) * ((1 - wx) * v00 + wx * v01) + wy * ((1 - wx) * v10 + wx * v11);
        dst[((size_t)dy * dw + dx) * C + c] = (uint8_t)lrint(v);
      }
    }
  }
}

/* }================================================================== */

/* {==================================================================
** Crop and flips
** =================================================================== */

void trl_crop_u8 (const uint8_t *src, ptrdiff_t sstride, int x0, int y0, int cw, int ch,
                  int C, uint8_t *dst) {
  size_t row = (size_t)cw * C;
  for (int y = 0; y < ch; y++)
    memcpy(dst + y * row, src + (ptrdiff_t)(y0 + y) * sstride + (ptrdiff_t)x0 * C, row);
}

void trl_flip_lr_u8 (uint8_t *img, int H, int W, int C) {
  for (int y = 0; y < H; y++) {
    uint8_t *row = img + (size_t)y * W * C;
    for (int i = 0, j = W - 1; i < j; i++, j--)
      for (int c = 0; c < C; c++) {
        uint8_t t = row[i * C + c];
        row[i * C + c] = row[j * C + c];
        row[j * C + c] = t;
      }
  }
}

void trl_flip_tb_u8 (uint8_t *img, int H, int W, int C) {
  size_t n = (size_t)W * C;
  for (int i = 0, j = H - 1; i < j; i++, j--) {
    uint8_t *a = img + i * n, *b = img + j * n;
    for (size_t k = 0; k < n; k++) {
      uint8_t t = a[k];
      a[k] = b[k];
      b[k] = t;
    }
  }
}

/* }================================================================== */

/* {==================================================================
** ToTensor and Normalize
** =================================================================== */

void trl_to_tensor_u8 (const uint8_t *src, int H, int W, int C,
                       const float *mean, const float *std, int n, float *dst) {
  float lut[4][256];                                   // C <= 4 (checked by callers)
  size_t L = (size_t)H * W;
  for (int c = 0; c < C; c++) {
    float m = mean ? mean[n > 1 ? c : 0] : 0.f, s = std ? std[n > 1 ? c : 0] : 1.f;
    for (int v = 0; v < 256; v++) {
      float x = (float)v / 255.0f;                   // ToTensor, then Normalize, in float
      lut[c][v] = mean ? (x - m) / s : x;
    }
  }
  if (C == 3) {
    float *d0 = dst, *d1 = dst + L, *d2 = dst + 2 * L;
    for (size_t l = 0; l < L; l++) {
      d0[l] = lut[0][src[3 * l]];
      d1[l] = lut[1][src[3 * l + 1]];
      d2[l] = lut[2][src[3 * l + 2]];
    }
    return;
  }
  for (int c = 0; c < C; c++)
    for (size_t l = 0; l < L; l++) dst[c * L + l] = lut[c][src[l * C + c]];
}

void trl_to_tensor_f32 (const float *src, int H, int W, int C, float *dst) {
  size_t L = (size_t)H * W;
  for (int c = 0; c < C; c++)
    for (size_t l = 0; l < L; l++) dst[c * L + l] = src[l * C + c] / 255.0f;
}

void trl_normalize_f32 (float *x, int N, int C, int64_t L, const float *mean,
                        const float *std, int n) {
  for (int b = 0; b < N; b++)
    for (int c = 0; c < C; c++) {
      float m = mean[n > 1 ? c : 0], s = std[n > 1 ? c : 0];
      float *p = x + ((int64_t)b * C + c) * L;
      for (int64_t l = 0; l < L; l++) p[l] = (p[l] - m) / s;
    }
}

/* }================================================================== */

/* {==================================================================
** Color jitters
** =================================================================== */

static const float gray_coef[3] = { 0.299f, 0.587f, 0.114f };

void trl_brightness_u8 (uint8_t *img, size_t n, float alpha) {
  for (size_t i = 0; i < n; i++) img[i] = sat_trunc((float)img[i] * alpha);
}

void trl_contrast_u8 (uint8_t *img, int H, int W, int C, float alpha) {
  size_t L = (size_t)H * W;
  double sum = 0;                                      // double: no drift on big images
  if (C >= 3)
    for (size_t l = 0; l < L; l++)
      for (int c = 0; c < 3; c++) sum += img[l * C + c] * gray_coef[c];
  else
    for (size_t l = 0; l < L; l++) sum += img[l * C];
  float gray_mean = L ? (float)(sum / (double)L) : 0.f;
  float beta = (1.f - alpha) * gray_mean;
  for (size_t i = 0; i < L * C; i++) img[i] = sat_trunc((float)img[i] * alpha + beta);
}

void trl_saturation_u8 (uint8_t *img, int H, int W, int C, float alpha) {
  if (C < 3) return;                                   // gray stays gray
  size_t L = (size_t)H * W;
  float alpha_o = 1.f - alpha;
  for (size_t l = 0; l < L; l++) {
    uint8_t *p = img + l * C;
    float gray = (p[0] * gray_coef[0] + p[1] * gray_coef[1] + p[2] * gray_coef[2]) * alpha_o;
    for (int c = 0; c < 3; c++) p[c] = sat_trunc(gray + p[c] * alpha);
  }
}

// MXNet's RGB2HLSConvert: h in degrees [0,360), l and s in [0,1].
static void rgb2hls (float r, float g, float b, float *h, float *l, float *s) {
  r /= 255.f, g /= 255.f, b /= 255.f;
  float vmax = fmaxf(r, fmaxf(g, b)), vmin = fminf(r, fminf(g, b));
  float diff = vmax - vmin;
  *h = 0.f, *s = 0.f, *l = (vmax + vmin) * 0.5f;
  if (diff > 1.1920929e-7f) {                          // FLT_EPSILON
    *s = *l < 0.5f ? diff / (vmax + vmin) : diff / (2.0f - vmax - vmin);
    diff = 60.f / diff;
    if (vmax == r) *h = (g - b) * diff;
    else if (vmax == g) *h = (b - r) * diff + 120.f;
    else *h = (r - g) * diff + 240.f;
    if (*h < 0.f) *h += 360.f;
  }
}

// MXNet's HLS2RGBConvert, back to [0,255] floats.
static void hls2rgb (float h, float l, float s, float *r, float *g, float *b) {
  static const int sector_data[6][3] = {
    { 1, 3, 0 }, { 1, 0, 2 }, { 3, 0, 1 }, { 0, 2, 1 }, { 0, 1, 3 }, { 2, 1, 0 } };
  float bb = l, gg = l, rr = l;
  if (s != 0) {
    float p2 = l <= 0.5f ? l * (1 + s) : l + s - l * s;
    float p1 = 2 * l - p2;
    h *= 1.f / 60.f;
    h = fmodf(h, 6.f);                                 // MXNet loops; same value
    if (h < 0) h += 6.f;
    int sector = (int)h;
    if (sector > 5) sector = 5;                        // h just below 6 rounding up
    h -= (float)sector;
    float tab[4] = { p2, p1, p1 + (p2 - p1) * (1 - h), p1 + (p2 - p1) * h };
    bb = tab[sector_data[sector][0]];
    gg = tab[sector_data[sector][1]];
    rr = tab[sector_data[sector][2]];
  }
  *r = rr * 255.f, *g = gg * 255.f, *b = bb * 255.f;
}

void trl_hue_u8 (uint8_t *img, int H, int W, int C, float alpha) {
  if (C < 3) return;
  size_t L = (size_t)H * W;
  for (size_t i = 0; i < L; i++) {
    uint8_t *p = img + i * C;
    float h, l, s, r, g, b;
    rgb2hls(p[0], p[1], p[2], &h, &l, &s);
    hls2rgb(h + alpha * 360.f, l, s, &r, &g, &b);
    p[0] = sat_trunc(r), p[1] = sat_trunc(g), p[2] = sat_trunc(b);
  }
}

void trl_lighting_u8 (uint8_t *img, int H, int W, int C, const float alpha[3]) {
  static const float eig[3][3] = {                     // eigvec[i][j] * eigval[j]
    { 55.46f * -0.5675f, 4.794f * 0.7192f, 1.148f * 0.4009f },
    { 55.46f * -0.5808f, 4.794f * -0.0045f, 1.148f * -0.8140f },
    { 55.46f * -0.5836f, 4.794f * -0.6948f, 1.148f * 0.4203f } };
  if (C < 3) return;
  float pca[3];
  for (int i = 0; i < 3; i++)
    pca[i] = eig[i][0] * alpha[0] + eig[i][1] * alpha[1] + eig[i][2] * alpha[2];
  size_t L = (size_t)H * W;
  for (size_t i = 0; i < L; i++) {
    uint8_t *p = img + i * C;
    for (int c = 0; c < 3; c++) p[c] = sat_trunc(p[c] + pca[c]);
  }
}

/* }================================================================== */
