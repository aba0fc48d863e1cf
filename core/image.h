/*
** image.h: JPEG and PNG decoding to uint8 HWC tensors and encoding back, the way Gluon's
** imread/imdecode (OpenCV) see images: flag 1 = RGB (C = 3), flag 0 = grayscale (C = 1),
** alpha dropped, EXIF orientation applied. No resizing here: see transforms.
*/
#ifndef TRL_IMAGE_H
#define TRL_IMAGE_H

#include <stddef.h>

#include "tensor.h"

#define TRL_IMREAD_GRAY 0
#define TRL_IMREAD_COLOR 1

// Decode 'n' bytes of JPEG or PNG (found by magic bytes) into a new uint8 [H,W,C] tensor.
// 'name' (a path or "<buffer>"; NULL is fine) goes into messages: TRL_EFORMAT for bad data.
trl_status trl_image_decode (trl_tensor **out, const void *buf, size_t n, int flag,
                             const char *name);
// Read and decode a file; TRL_EIO when it cannot be read.
trl_status trl_image_read (trl_tensor **out, const char *path, int flag);
// Like decode, but a JPEG is decoded with the strongest libjpeg DCT scaling (1/8 .. 8/8)
// whose result is still at least min_w x min_h (after EXIF orientation; <= 0: no bound).
// PNG decodes at full size.
trl_status trl_image_decode_scaled (trl_tensor **out, const void *buf, size_t n, int flag,
                                    int min_w, int min_h, const char *name);
trl_status trl_image_read_scaled (trl_tensor **out, const char *path, int flag,
                                  int min_w, int min_h);

// Encode a uint8 [H,W,C] (C = 1 or 3) or [H,W] tensor, any strides. '*buf' comes from
// malloc and the caller frees it. JPEG quality is 1..100.
trl_status trl_image_encode_png (const trl_tensor *img, unsigned char **buf, size_t *n);
trl_status trl_image_encode_jpeg (const trl_tensor *img, int quality, unsigned char **buf,
                                  size_t *n);
// Encode by the extension of 'path' (.png, .jpg, .jpeg, any case) and write it atomically
// (a temporary file in the same directory, then rename). 'quality' is for JPEG: 1..100,
// or 0 for the default 95.
trl_status trl_image_write (const trl_tensor *img, const char *path, int quality);

#endif
