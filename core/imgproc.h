/*
** imgproc.h: the image kernels behind gluon.data.vision.transforms (Gluon 1.x / OpenCV
** semantics). Images are uint8 HWC rows with a byte stride; kernels take raw pointers and
** dims, never allocate and never fail. Randomness and shapes live in pipeline.c.
*/
#ifndef TRL_IMGPROC_H
#define TRL_IMGPROC_H

#include <stddef.h>
#include <stdint.h>

/* {==================================================================
** Geometry
** =================================================================== */

// Bytes of workspace 'trl_resize_u8' needs for a resize to dw x dh with C channels.
size_t trl_resize_ws_size (int dw, int C);

// Bilinear resize as OpenCV's cv::resize(INTER_LINEAR) on CV_8U: half-pixel centres,
// edge clamping, no antialiasing, FIXED POINT: 11-bit weights (rounded with lrintf), an
// int horizontal pass, and the vertical pass of OpenCV's SIMD path,
// ((b0*(r0>>4))>>16 + (b1*(r1>>4))>>16 + 2) >> 2: bit for bit OpenCV 4.6 on x86 (checked
// on random images up to 640x480). 'ws' has trl_resize_ws_size bytes.
// src is (sh,sw,C) with rows 'sstride' bytes apart; dst is contiguous (dh,dw,C).
void trl_resize_u8 (const uint8_t *src, int sh, int sw, ptrdiff_t sstride,
                    uint8_t *dst, int dh, int dw, int C, void *ws);
// The float reference: same coordinate mapping, double weights, rounded to nearest.
void trl_resize_u8_ref (const uint8_t *src, int sh, int sw, ptrdiff_t sstride,
                        uint8_t *dst, int dh, int dw, int C);

// Copy the (ch,cw) window at (y0,x0) of src (rows 'sstride' bytes apart) to contiguous dst.
void trl_crop_u8 (const uint8_t *src, ptrdiff_t sstride, int x0, int y0, int cw, int ch,
                  int C, uint8_t *dst);
// Mirror in place: columns (left-right) or rows (top-bottom) of a contiguous (H,W,C) image.
void trl_flip_lr_u8 (uint8_t *img, int H, int W, int C);
void trl_flip_tb_u8 (uint8_t *img, int H, int W, int C);

/* }================================================================== */

/* {==================================================================
** ToTensor and Normalize
** =================================================================== */

// HWC -> CHW float: dst[c][l] = (src[l][c] / 255 - mean[c]) / std[c]; mean/std may be
// NULL (plain ToTensor), else they have 'n' entries (1 broadcasts). The result is bit
// for bit ToTensor followed by Normalize: a 256-entry table per channel holds the values.
void trl_to_tensor_u8 (const uint8_t *src, int H, int W, int C,
                       const float *mean, const float *std, int n, float *dst);
void trl_to_tensor_f32 (const float *src, int H, int W, int C, float *dst);
// x is (N,C,L): x = (x - mean[c]) / std[c] in place; 'n' entries, 1 broadcasts.
void trl_normalize_f32 (float *x, int N, int C, int64_t L, const float *mean,
                        const float *std, int n);

/* }================================================================== */

/* {==================================================================
** Color jitters, in place on contiguous (H,W,C) uint8, C = 1 or 3 (Gluon's
** image_random-inl.h): results are clamped to [0,255] then truncated
** =================================================================== */

// x *= alpha.
void trl_brightness_u8 (uint8_t *img, size_t n, float alpha);
// x = alpha*x + (1-alpha)*mean_gray, mean_gray over the image (0.299, 0.587, 0.114).
void trl_contrast_u8 (uint8_t *img, int H, int W, int C, float alpha);
// x = alpha*x + (1-alpha)*gray(pixel).
void trl_saturation_u8 (uint8_t *img, int H, int W, int C, float alpha);
// Rotate the hue by alpha*360 degrees in HLS space; C = 1 is left as is.
void trl_hue_u8 (uint8_t *img, int H, int W, int C, float alpha);
// Add eigvec . (alpha * eigval) with AlexNet's ImageNet PCA; C = 1 is left as is.
void trl_lighting_u8 (uint8_t *img, int H, int W, int C, const float alpha[3]);

/* }================================================================== */

#endif
