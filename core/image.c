/*
** image.c: JPEG (libjpeg) and PNG (libpng) decoding to uint8 HWC tensors and encoding back.
** Both libraries report errors by calling a handler that must not return: ours copy the
** message and longjmp back into the decoder, which frees everything it holds (all state
** that the cleanup needs lives in a heap context, never in locals changed after setjmp).
*/
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "image.h"
#include "ndlist.h"   // trl_write_atomic

// Larger than this is a corrupt header or a decompression bomb, not a photo.
#define MAX_PIXELS ((int64_t)1 << 28)

/* {==================================================================
** Shared helpers
** =================================================================== */

static trl_status read_whole (const char *path, const char *op, unsigned char **buf, size_t *n) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return trl_fail(TRL_EIO, "%s: %s: %s", op, path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    int err = errno;
    close(fd);
    return trl_fail(TRL_EIO, "%s: %s: %s", op, path,
                    S_ISDIR(sb.st_mode) ? "is a directory" : err ? strerror(err) : "not a file");
  }
  size_t size = (size_t)sb.st_size, got = 0;
  unsigned char *p = malloc(size ? size : 1);
  if (!p) {
    close(fd);
    return trl_fail(TRL_ENOMEM, "%s: %s: out of memory for %zu bytes", op, path, size);
  }
  while (got < size) {
    ssize_t r = read(fd, p + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = errno;
      free(p);
      close(fd);
      return trl_fail(TRL_EIO, "%s: %s: read failed (%s)", op, path,
                      r < 0 ? strerror(err) : "file shrank while reading");
    }
    got += (size_t)r;
  }
  close(fd);
  *buf = p;
  *n = size;
  return TRL_OK;
}

static trl_status check_size (int64_t w, int64_t h, const char *fmt, const char *op,
                              const char *name) {
  if (w <= 0 || h <= 0 || w * h > MAX_PIXELS)
    return trl_fail(TRL_EFORMAT, "%s: %s: %s image of %lld x %lld pixels is empty or too large",
                    op, name, fmt, (long long)w, (long long)h);
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** EXIF orientation (TIFF tag 0x0112 in IFD0 of an APP1 "Exif" segment)
** =================================================================== */

static unsigned rd16 (const unsigned char *p, int le) {
  return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1];
}

static uint32_t rd32 (const unsigned char *p, int le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Orientation 1..8 from an APP1 payload 'p' of 'n' bytes; 1 when absent or malformed.
static int exif_orientation (const unsigned char *p, size_t n) {
  if (n < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
  const unsigned char *t = p + 6;      // TIFF header: byte order, 42, offset of IFD0
  size_t tn = n - 6;
  int le;
  if (t[0] == 'I' && t[1] == 'I') le = 1;
  else if (t[0] == 'M' && t[1] == 'M') le = 0;
  else return 1;
  if (rd16(t + 2, le) != 42) return 1;
  uint32_t ifd = rd32(t + 4, le);
  if (ifd < 8 || ifd > tn - 2) return 1;
  unsigned count = rd16(t + ifd, le);
  for (unsigned i = 0; i < count; i++) {
    size_t e = ifd + 2 + 12 * (size_t)i;   // entry: tag, type, count, value
    if (e + 12 > tn) break;
    if (rd16(t + e, le) == 0x0112) {
      unsigned v = rd16(t + e + 8, le);
      return rd16(t + e + 2, le) == 3 && v >= 1 && v <= 8 ? (int)v : 1;   // type SHORT
    }
  }
  return 1;
}

// Replace '*img' (H,W,C) by its EXIF orientation 'o' applied (a copy; 5..8 swap H and W).
static trl_status reorient (trl_tensor **img, int o) {
  if (o <= 1) return TRL_OK;
  trl_tensor *src = *img, *dst;
  int64_t H = src->shape[0], W = src->shape[1], C = src->shape[2];
  int swap = o >= 5;
  int64_t OH = swap ? W : H, OW = swap ? H : W;
  TRL_TRY(trl_tensor_empty(&dst, TRL_U8, 3, (int64_t[]){OH, OW, C}));
  const uint8_t *s = trl_data(src);
  uint8_t *d = trl_data(dst);
  for (int64_t oy = 0; oy < OH; oy++)
    for (int64_t ox = 0; ox < OW; ox++) {
      int64_t sy, sx;             // the stored pixel shown at (oy, ox)
      switch (o) {
        case 2: sy = oy; sx = W - 1 - ox; break;              // mirror
        case 3: sy = H - 1 - oy; sx = W - 1 - ox; break;      // rotate 180
        case 4: sy = H - 1 - oy; sx = ox; break;              // flip
        case 5: sy = ox; sx = oy; break;                      // transpose
        case 6: sy = H - 1 - ox; sx = oy; break;              // rotate 90 clockwise
        case 7: sy = H - 1 - ox; sx = W - 1 - oy; break;      // transverse
        default: sy = ox; sx = W - 1 - oy; break;             // 8: rotate 90 counterclockwise
      }
      memcpy(d + (oy * OW + ox) * C, s + (sy * W + sx) * C, (size_t)C);
    }
  trl_tensor_release(src);
  *img = dst;
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** JPEG decoding
** =================================================================== */

typedef struct JErr {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} JErr;

static void jerr_exit (j_common_ptr c) {
  JErr *e = (JErr *)c->err;
  c->err->format_message(c, e->msg);
  longjmp(e->jb, 1);
}

// Warnings that mean the data ran out are errors: libjpeg would return a gray-filled image.
static void jerr_emit (j_common_ptr c, int level) {
  if (level >= 0) return;            // trace messages
  if (c->err->msg_code == JWRN_JPEG_EOF || c->err->msg_code == JWRN_HIT_MARKER)
    jerr_exit(c);
  c->err->num_warnings++;
}

static void jerr_output (j_common_ptr c) {
  (void)c;                           // core never prints
}

typedef struct JDec {
  struct jpeg_decompress_struct cinfo;
  JErr err;
  trl_tensor *img;
  unsigned char *row;                // CMYK scratch row
} JDec;

// One CMYK row (W,4) to RGB or gray (W,C). Adobe files store inverted CMYK.
static void cmyk_row (const unsigned char *in, uint8_t *out, int64_t W, int C, int adobe) {
  for (int64_t x = 0; x < W; x++, in += 4) {
    int c = in[0], m = in[1], y = in[2], k = in[3];
    if (!adobe) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
    int r = (c * k + 127) / 255, g = (m * k + 127) / 255, b = (y * k + 127) / 255;
    if (C == 3) { out[3*x] = (uint8_t)r; out[3*x+1] = (uint8_t)g; out[3*x+2] = (uint8_t)b; }
    else out[x] = (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
  }
}

static trl_status decode_jpeg (trl_tensor **out, const unsigned char *buf, size_t n, int flag,
                               int min_w, int min_h, const char *op, const char *name) {
  JDec *x = calloc(1, sizeof *x);
  if (!x) return trl_fail(TRL_ENOMEM, "%s: %s: out of memory", op, name);
  trl_status st = TRL_OK;
  struct jpeg_decompress_struct *ci = &x->cinfo;
  ci->err = jpeg_std_error(&x->err.pub);
  x->err.pub.error_exit = jerr_exit;
  x->err.pub.emit_message = jerr_emit;
  x->err.pub.output_message = jerr_output;
  if (setjmp(x->err.jb)) {
    st = trl_fail(TRL_EFORMAT, "%s: %s: corrupt or truncated JPEG (%s)", op, name, x->err.msg);
    goto done;
  }
  jpeg_create_decompress(ci);
  jpeg_mem_src(ci, buf, (unsigned long)n);
  jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(ci, TRUE);
  int orient = 1;
  for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && (orient = exif_orientation(m->data, m->data_length)) != 1)
      break;
  int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
  int C = flag ? 3 : 1;
  ci->out_color_space = cmyk ? JCS_CMYK : flag ? JCS_RGB : JCS_GRAYSCALE;
  if (min_w > 0 || min_h > 0) {      // strongest DCT scaling that keeps the requested size
    for (unsigned num = 1; num <= 8; num++) {
      ci->scale_num = num;
      ci->scale_denom = 8;
      jpeg_calc_output_dimensions(ci);
      unsigned w = ci->output_width, h = ci->output_height;
      if (orient >= 5) { unsigned t = w; w = h; h = t; }
      if ((min_w <= 0 || w >= (unsigned)min_w) && (min_h <= 0 || h >= (unsigned)min_h)) break;
    }
  }
  if ((st = check_size(ci->image_width, ci->image_height, "JPEG", op, name)) != TRL_OK) goto done;
  jpeg_start_decompress(ci);
  int64_t W = ci->output_width, H = ci->output_height;
  if (ci->output_components != (cmyk ? 4 : C)) {
    st = trl_fail(TRL_EFORMAT, "%s: %s: JPEG decodes to %d components, expected %d", op, name,
                  ci->output_components, cmyk ? 4 : C);
    goto done;
  }
  if ((st = trl_tensor_empty(&x->img, TRL_U8, 3, (int64_t[]){H, W, C})) != TRL_OK) goto done;
  if (cmyk && !(x->row = malloc((size_t)W * 4))) {
    st = trl_fail(TRL_ENOMEM, "%s: %s: out of memory", op, name);
    goto done;
  }
  uint8_t *data = trl_data(x->img);
  while (ci->output_scanline < ci->output_height) {
    uint8_t *dst = data + (int64_t)ci->output_scanline * W * C;
    JSAMPROW row = cmyk ? x->row : dst;
    if (jpeg_read_scanlines(ci, &row, 1) != 1) {   // only a suspending source returns 0
      st = trl_fail(TRL_EFORMAT, "%s: %s: JPEG data ended early", op, name);
      goto done;
    }
    if (cmyk) cmyk_row(x->row, dst, W, C, ci->saw_Adobe_marker);
  }
  jpeg_finish_decompress(ci);
  if ((st = reorient(&x->img, orient)) != TRL_OK) goto done;
  *out = x->img;
  x->img = NULL;
done:
  jpeg_destroy_decompress(ci);
  trl_tensor_release(x->img);
  free(x->row);
  free(x);
  return st;
}

/* }================================================================== */

/* {==================================================================
** PNG decoding (classic libpng API, transformed as OpenCV's imread does: palette and
** low bit depths expanded, 16 bits cut to the high byte, alpha and tRNS dropped)
** =================================================================== */

typedef struct PDec {
  png_structp png;
  png_infop info;
  const unsigned char *buf;
  size_t n, pos;
  trl_tensor *img;
  png_bytep *rows;
  char msg[200];
} PDec;

static void perr (png_structp png, png_const_charp m) {
  PDec *x = png_get_error_ptr(png);
  snprintf(x->msg, sizeof x->msg, "%s", m);
  png_longjmp(png, 1);
}

static void pwarn (png_structp png, png_const_charp m) {
  (void)png; (void)m;                // e.g. "iCCP: known incorrect sRGB profile"
}

static void png_readbuf (png_structp png, png_bytep data, size_t len) {
  PDec *x = png_get_io_ptr(png);
  if (len > x->n - x->pos) png_error(png, "file is truncated");
  memcpy(data, x->buf + x->pos, len);
  x->pos += len;
}

static trl_status decode_png (trl_tensor **out, const unsigned char *buf, size_t n, int flag,
                              const char *op, const char *name) {
  PDec *x = calloc(1, sizeof *x);
  if (!x) return trl_fail(TRL_ENOMEM, "%s: %s: out of memory", op, name);
  x->buf = buf;
  x->n = n;
  trl_status st = TRL_OK;
  x->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, x, perr, pwarn);
  if (!x->png || !(x->info = png_create_info_struct(x->png))) {
    st = trl_fail(TRL_ENOMEM, "%s: %s: out of memory", op, name);
    goto done;
  }
  if (setjmp(png_jmpbuf(x->png))) {
    st = trl_fail(TRL_EFORMAT, "%s: %s: corrupt or truncated PNG (%s)", op, name, x->msg);
    goto done;
  }
  png_set_read_fn(x->png, x, png_readbuf);
  png_read_info(x->png, x->info);
  png_uint_32 w, h;
  int depth, ctype, interlace;
  png_get_IHDR(x->png, x->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  if ((st = check_size(w, h, "PNG", op, name)) != TRL_OK) goto done;
  int C = flag ? 3 : 1;
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(x->png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(x->png);
  if (depth == 16) png_set_strip_16(x->png);
  png_set_strip_alpha(x->png);
  if (flag && !(ctype & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(x->png);
  if (!flag && (ctype & PNG_COLOR_MASK_COLOR))
    png_set_rgb_to_gray_fixed(x->png, 1, 29900, 58700);   // BT.601, as OpenCV
  png_set_interlace_handling(x->png);
  png_read_update_info(x->png, x->info);
  if (png_get_channels(x->png, x->info) != C ||
      png_get_rowbytes(x->png, x->info) != w * (size_t)C) {
    st = trl_fail(TRL_EFORMAT, "%s: %s: unsupported PNG layout (color type %d, depth %d)", op,
                  name, ctype, depth);
    goto done;
  }
  if ((st = trl_tensor_empty(&x->img, TRL_U8, 3, (int64_t[]){h, w, C})) != TRL_OK) goto done;
  if (!(x->rows = malloc(h * sizeof *x->rows))) {
    st = trl_fail(TRL_ENOMEM, "%s: %s: out of memory", op, name);
    goto done;
  }
  for (png_uint_32 y = 0; y < h; y++)
    x->rows[y] = (png_bytep)trl_data(x->img) + (size_t)y * w * C;
  png_read_image(x->png, x->rows);
  png_read_end(x->png, NULL);        // checks the CRC of the last image chunk
  *out = x->img;
  x->img = NULL;
done:
  png_destroy_read_struct(&x->png, &x->info, NULL);
  trl_tensor_release(x->img);
  free(x->rows);
  free(x);
  return st;
}

/* }================================================================== */

/* {==================================================================
** Decoding entry points
** =================================================================== */

static trl_status decode (trl_tensor **out, const void *buf, size_t n, int flag, int min_w,
                          int min_h, const char *op, const char *name) {
  const unsigned char *p = buf;
  if (!name) name = "<buffer>";
  if (flag != TRL_IMREAD_GRAY && flag != TRL_IMREAD_COLOR)
    return trl_fail(TRL_EARG, "%s: %s: flag must be 0 (grayscale) or 1 (color), got %d", op,
                    name, flag);
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
    return decode_jpeg(out, p, n, flag, min_w, min_h, op, name);
  if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
    return decode_png(out, p, n, flag, op, name);
  if (n == 0) return trl_fail(TRL_EFORMAT, "%s: %s: empty, not a JPEG or PNG image", op, name);
  char hex[16] = "";
  for (size_t i = 0, k = 0; i < n && i < 4; i++)
    k += (size_t)snprintf(hex + k, sizeof hex - k, i ? " %02x" : "%02x", p[i]);
  return trl_fail(TRL_EFORMAT, "%s: %s: not a JPEG or PNG image (starts with %s)", op, name, hex);
}

trl_status trl_image_decode (trl_tensor **out, const void *buf, size_t n, int flag,
                             const char *name) {
  return decode(out, buf, n, flag, 0, 0, "imdecode", name);
}

trl_status trl_image_decode_scaled (trl_tensor **out, const void *buf, size_t n, int flag,
                                    int min_w, int min_h, const char *name) {
  return decode(out, buf, n, flag, min_w, min_h, "imdecode", name);
}

trl_status trl_image_read_scaled (trl_tensor **out, const char *path, int flag,
                                  int min_w, int min_h) {
  unsigned char *buf = NULL;
  size_t n = 0;
  TRL_TRY(read_whole(path, "imread", &buf, &n));
  trl_status st = decode(out, buf, n, flag, min_w, min_h, "imread", path);
  free(buf);
  return st;
}

trl_status trl_image_read (trl_tensor **out, const char *path, int flag) {
  return trl_image_read_scaled(out, path, flag, 0, 0);
}

/* }================================================================== */

/* {==================================================================
** Encoding
** =================================================================== */

// Check that 'img' is uint8 [H,W,C] with C in {1,3}, or [H,W]; 'lim' bounds each side.
static trl_status check_img (const trl_tensor *img, const char *op, int64_t lim,
                             int64_t *H, int64_t *W, int *C) {
  char s[TRL_SHAPELEN];
  if (img->dtype != TRL_U8)
    return trl_fail(TRL_ETYPE, "%s: expected a uint8 image, got %s %s", op,
                    trl_dtype_name(img->dtype), trl_tensor_shape_str(s, img));
  if (!(img->ndim == 2 || (img->ndim == 3 && (img->shape[2] == 1 || img->shape[2] == 3))))
    return trl_fail(TRL_ESHAPE, "%s: expected an image [H,W,C] with C = 1 or 3, or [H,W], got %s",
                    op, trl_tensor_shape_str(s, img));
  *H = img->shape[0];
  *W = img->shape[1];
  *C = img->ndim == 3 ? (int)img->shape[2] : 1;
  if (*H < 1 || *W < 1 || *H > lim || *W > lim)
    return trl_fail(TRL_ESHAPE, "%s: image %s must have sides 1..%lld", op,
                    trl_tensor_shape_str(s, img), (long long)lim);
  return TRL_OK;
}

// Row 'y' of 'img' (any strides) packed into 'row' (W*C bytes).
static void gather_row (const trl_tensor *img, int64_t y, int64_t W, int C, uint8_t *row) {
  const uint8_t *base = (const uint8_t *)trl_data(img) + y * img->stride[0];
  int64_t sx = img->stride[1], sc = img->ndim == 3 ? img->stride[2] : 0;
  for (int64_t x = 0; x < W; x++)
    for (int c = 0; c < C; c++)
      row[x * C + c] = base[x * sx + c * sc];
}

typedef struct PEnc {
  png_structp png;
  png_infop info;
  unsigned char *buf;
  size_t n, cap;
  uint8_t *row;
  char msg[200];
} PEnc;

static void pwerr (png_structp png, png_const_charp m) {
  PEnc *x = png_get_error_ptr(png);
  snprintf(x->msg, sizeof x->msg, "%s", m);
  png_longjmp(png, 1);
}

static void png_writebuf (png_structp png, png_bytep data, size_t len) {
  PEnc *x = png_get_io_ptr(png);
  if (len > x->cap - x->n) {
    size_t cap = x->cap ? x->cap : 4096;
    while (cap - x->n < len) cap *= 2;
    unsigned char *b = realloc(x->buf, cap);
    if (!b) png_error(png, "out of memory");
    x->buf = b;
    x->cap = cap;
  }
  memcpy(x->buf + x->n, data, len);
  x->n += len;
}

static void png_flushbuf (png_structp png) {
  (void)png;
}

trl_status trl_image_encode_png (const trl_tensor *img, unsigned char **buf, size_t *n) {
  int64_t H, W;
  int C;
  TRL_TRY(check_img(img, "imencode png", 0x7fffffff / 3, &H, &W, &C));
  PEnc *x = calloc(1, sizeof *x);
  if (!x) return trl_fail(TRL_ENOMEM, "imencode png: out of memory");
  trl_status st = TRL_OK;
  x->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, x, pwerr, pwarn);
  if (!x->png || !(x->info = png_create_info_struct(x->png)) ||
      !(x->row = malloc((size_t)(W * C)))) {
    st = trl_fail(TRL_ENOMEM, "imencode png: out of memory");
    goto done;
  }
  if (setjmp(png_jmpbuf(x->png))) {
    st = trl_fail(TRL_ENOMEM, "imencode png: %s", x->msg);
    goto done;
  }
  png_set_write_fn(x->png, x, png_writebuf, png_flushbuf);
  png_set_IHDR(x->png, x->info, (png_uint_32)W, (png_uint_32)H, 8,
               C == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(x->png, x->info);
  for (int64_t y = 0; y < H; y++) {
    gather_row(img, y, W, C, x->row);
    png_write_row(x->png, x->row);
  }
  png_write_end(x->png, NULL);
  *buf = x->buf;
  *n = x->n;
  x->buf = NULL;
done:
  png_destroy_write_struct(&x->png, &x->info);
  free(x->buf);
  free(x->row);
  free(x);
  return st;
}

// A libjpeg destination that grows a malloc'd buffer (jpeg_mem_dest leaks it on errors).
typedef struct JDest {
  struct jpeg_destination_mgr pub;
  unsigned char *buf;
  size_t cap;
} JDest;

static void jdest_init (j_compress_ptr c) {
  JDest *d = (JDest *)c->dest;
  if (!(d->buf = malloc(d->cap = 65536))) ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
  d->pub.next_output_byte = d->buf;
  d->pub.free_in_buffer = d->cap;
}

static boolean jdest_empty (j_compress_ptr c) {   // called when the buffer is full
  JDest *d = (JDest *)c->dest;
  unsigned char *b = realloc(d->buf, d->cap * 2);
  if (!b) ERREXIT1(c, JERR_OUT_OF_MEMORY, 1);
  d->buf = b;
  d->pub.next_output_byte = b + d->cap;
  d->pub.free_in_buffer = d->cap;
  d->cap *= 2;
  return TRUE;
}

static void jdest_term (j_compress_ptr c) {
  (void)c;
}

typedef struct JEnc {
  struct jpeg_compress_struct cinfo;
  JErr err;
  JDest dest;
  uint8_t *row;
} JEnc;

trl_status trl_image_encode_jpeg (const trl_tensor *img, int quality, unsigned char **buf,
                                  size_t *n) {
  int64_t H, W;
  int C;
  TRL_TRY(check_img(img, "imencode jpeg", JPEG_MAX_DIMENSION, &H, &W, &C));
  if (quality < 1 || quality > 100)
    return trl_fail(TRL_EARG, "imencode jpeg: quality must be 1..100, got %d", quality);
  JEnc *x = calloc(1, sizeof *x);
  if (!x || !(x->row = malloc((size_t)(W * C)))) {
    free(x);
    return trl_fail(TRL_ENOMEM, "imencode jpeg: out of memory");
  }
  trl_status st = TRL_OK;
  struct jpeg_compress_struct *ci = &x->cinfo;
  ci->err = jpeg_std_error(&x->err.pub);
  x->err.pub.error_exit = jerr_exit;
  x->err.pub.output_message = jerr_output;
  if (setjmp(x->err.jb)) {
    st = trl_fail(TRL_ENOMEM, "imencode jpeg: %s", x->err.msg);
    goto done;
  }
  jpeg_create_compress(ci);
  x->dest.pub.init_destination = jdest_init;
  x->dest.pub.empty_output_buffer = jdest_empty;
  x->dest.pub.term_destination = jdest_term;
  ci->dest = &x->dest.pub;
  ci->image_width = (JDIMENSION)W;
  ci->image_height = (JDIMENSION)H;
  ci->input_components = C;
  ci->in_color_space = C == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(ci);
  jpeg_set_quality(ci, quality, TRUE);
  jpeg_start_compress(ci, TRUE);
  for (int64_t y = 0; y < H; y++) {
    gather_row(img, y, W, C, x->row);
    JSAMPROW r = x->row;
    jpeg_write_scanlines(ci, &r, 1);
  }
  jpeg_finish_compress(ci);
  *buf = x->dest.buf;
  *n = x->dest.cap - x->dest.pub.free_in_buffer;
  x->dest.buf = NULL;
done:
  jpeg_destroy_compress(ci);
  free(x->dest.buf);
  free(x->row);
  free(x);
  return st;
}

struct encoded { const unsigned char *buf; size_t n; };

static trl_status write_encoded (FILE *f, void *ud) {
  const struct encoded *e = ud;
  if (fwrite(e->buf, 1, e->n, f) != e->n)
    return trl_fail(TRL_EIO, "write failed: %s", strerror(errno));
  return TRL_OK;
}

trl_status trl_image_write (const trl_tensor *img, const char *path, int quality) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  int png = 0;
  if (dot && (!slash || dot > slash) && strcasecmp(dot, ".png") == 0) png = 1;
  else if (!(dot && (!slash || dot > slash) &&
             (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)))
    return trl_fail(TRL_EARG, "imwrite: %s: unknown image extension (use .png, .jpg or .jpeg)",
                    path);
  unsigned char *buf;
  size_t n;
  TRL_TRY(png ? trl_image_encode_png(img, &buf, &n)
              : trl_image_encode_jpeg(img, quality ? quality : 95, &buf, &n));
  struct encoded e = {buf, n};
  trl_status st = trl_write_atomic(path, write_encoded, &e);  // temp file, fsync, rename
  free(buf);
  if (st != TRL_OK) {
    char m[TRL_MSGLEN];
    snprintf(m, sizeof m, "%s", trl_errmsg());  // trl_fail writes the buffer it would read
    return trl_fail(st, "imwrite: %s", m);
  }
  return TRL_OK;
}

/* }================================================================== */
